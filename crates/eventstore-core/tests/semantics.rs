//! The store's semantics over the in-memory log and over a log whose global index lags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_core::memory::InMemoryLog;
use eventstore_core::{
    AppendBatch, Category, EventData, EventLog, EventStore, EventType, ExpectedVersion,
    GlobalFilter, LogPage, NewEvent, RecordedEvent, StoreError, StreamId, StreamTail, Timestamp,
    WriteConflict,
};
use uuid::Uuid;

fn id(s: &str) -> StreamId {
    StreamId::parse(s, "streamId").unwrap()
}

fn new_event(t: &str) -> NewEvent {
    NewEvent::new(
        EventType::parse(t, "eventType").unwrap(),
        EventData::from_json("{}".into(), "data").unwrap(),
    )
}

fn batch(types: &[&str]) -> AppendBatch {
    AppendBatch::new(types.iter().map(|t| new_event(t)).collect()).unwrap()
}

fn recorded(stream: &str, position: u64, t: &str) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::now_v7(),
        stream_id: id(stream),
        version: 1,
        event_type: EventType::parse(t, "eventType").unwrap(),
        schema_version: 1,
        data: EventData::from_json("{}".into(), "data").unwrap(),
        metadata: eventstore_core::Metadata::empty(),
        created_at: Timestamp::now(),
        global_position: Some(position),
    }
}

/// A log whose global index shows exactly the given events (holes included).
struct LaggingIndex(Vec<RecordedEvent>);

impl EventLog for LaggingIndex {
    async fn tail(&self, _: &StreamId, _: usize) -> Result<StreamTail, StoreError> {
        Ok(StreamTail::default())
    }
    async fn write(
        &self,
        _: &StreamId,
        _: u64,
        _: &[NewEvent],
        _: Timestamp,
        _: bool,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        Ok(Ok(()))
    }
    async fn event_ids(
        &self,
        _: &StreamId,
        _: u64,
        _: u64,
    ) -> Result<Vec<(u64, Uuid)>, StoreError> {
        Ok(vec![])
    }
    async fn read_stream(
        &self,
        _: &StreamId,
        _: u64,
        _: bool,
        _: usize,
        _: usize,
    ) -> Result<LogPage, StoreError> {
        Ok(LogPage::default())
    }
    async fn read_global(&self, from: u64, limit: usize, _: usize) -> Result<LogPage, StoreError> {
        let events: Vec<_> = self
            .0
            .iter()
            .filter(|e| e.global_position.unwrap() >= from)
            .cloned()
            .collect();
        Ok(LogPage {
            more: events.len() > limit,
            events: events.into_iter().take(limit).collect(),
        })
    }
}

#[tokio::test]
async fn a_global_page_stops_before_the_first_position_the_index_does_not_show() {
    // Position 3 is assigned but not yet visible in the index.
    let log = LaggingIndex(vec![
        recorded("A-1", 1, "X"),
        recorded("A-1", 2, "Y"),
        recorded("B-1", 4, "X"),
    ]);
    let store = EventStore::new(log);
    let page = store
        .read_global(&GlobalFilter::All, None, 100)
        .await
        .unwrap();
    let positions: Vec<_> = page
        .events
        .iter()
        .map(|e| e.global_position.unwrap())
        .collect();
    assert_eq!(positions, vec![1, 2]);
    assert_eq!(page.next, 3);

    // Filtered reads move past non-matching positions but never past the hole.
    let page = store
        .read_global(
            &GlobalFilter::EventType(EventType::parse("X", "t").unwrap()),
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.next, 3);
    let page = store
        .read_global(
            &GlobalFilter::Category(Category::parse("B", "c").unwrap()),
            Some(1),
            100,
        )
        .await
        .unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.next, 3);

    // Reading from a position the index does not show yet returns nothing and stays put.
    let page = store
        .read_global(&GlobalFilter::All, Some(3), 100)
        .await
        .unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.next, 3);
}

#[tokio::test]
async fn global_pages_chain_through_next_with_limits() {
    let store = EventStore::new(InMemoryLog::new());
    for (stream, types) in [
        ("Order-1", &["A", "B"][..]),
        ("Cart-1", &["A"]),
        ("Order-2", &["C", "A"]),
    ] {
        store
            .append(&id(stream), ExpectedVersion::Any, &batch(types))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut from = None;
    loop {
        let page = store
            .read_global(&GlobalFilter::All, from, 2)
            .await
            .unwrap();
        if page.events.is_empty() {
            assert_eq!(page.next, 6);
            break;
        }
        seen.extend(page.events.iter().map(|e| e.global_position.unwrap()));
        from = Some(page.next);
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);

    let a = GlobalFilter::EventType(EventType::parse("A", "t").unwrap());
    let page = store.read_global(&a, None, 2).await.unwrap();
    let positions: Vec<_> = page
        .events
        .iter()
        .map(|e| e.global_position.unwrap())
        .collect();
    assert_eq!((positions, page.next), (vec![1, 3], 4));
    let page = store.read_global(&a, Some(4), 2).await.unwrap();
    let positions: Vec<_> = page
        .events
        .iter()
        .map(|e| e.global_position.unwrap())
        .collect();
    assert_eq!((positions, page.next), (vec![5], 6));

    let orders = GlobalFilter::Category(Category::parse("Order", "c").unwrap());
    let page = store.read_global(&orders, None, 100).await.unwrap();
    let streams: Vec<_> = page
        .events
        .iter()
        .map(|e| e.stream_id.to_string())
        .collect();
    assert_eq!(streams, ["Order-1", "Order-1", "Order-2", "Order-2"]);
}

#[tokio::test]
async fn an_expected_version_near_u64_max_is_a_conflict_not_a_crash() {
    let store = EventStore::new(InMemoryLog::new());
    let err = store
        .append(&id("S-1"), ExpectedVersion::Exact(u64::MAX), &batch(&["A"]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::WrongExpectedVersion {
            expected: ExpectedVersion::Exact(u64::MAX),
            current: 0
        }
    ));
}

#[tokio::test]
async fn the_in_memory_log_follows_the_same_append_rules() {
    let store = EventStore::new(InMemoryLog::new());
    let s = id("Acc-1");
    let b = batch(&["A", "B"]);
    assert!(
        store
            .append(&s, ExpectedVersion::NoStream, &b)
            .await
            .unwrap()
            .created
    );
    assert!(
        !store
            .append(&s, ExpectedVersion::NoStream, &b)
            .await
            .unwrap()
            .created
    );
    assert!(
        !store
            .append(&s, ExpectedVersion::Any, &b)
            .await
            .unwrap()
            .created
    );
    let err = store
        .append(&s, ExpectedVersion::Exact(5), &batch(&["C"]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::WrongExpectedVersion { current: 2, .. }
    ));
    let err = store
        .append(&id("New-1"), ExpectedVersion::StreamExists, &batch(&["C"]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::WrongExpectedVersion { current: 0, .. }
    ));
}
