//! The store's semantics over the in-memory log and over a log whose global index lags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_core::memory::InMemoryLog;
use eventstore_core::{
    AppendBatch, Category, EventData, EventLog, EventStore, EventType, ExpectedVersion,
    GlobalFilter, IndexEnd, IndexPage, LogPage, NewEvent, RecordedEvent, StoreError, StreamId,
    StreamTail, Timestamp, WriteConflict,
};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A log of sequenced events whose indexes hide some positions, as lagging GSIs do, until
/// `reveal_after` index reads have happened.
struct LaggingIndex {
    log: Vec<RecordedEvent>,
    hidden: Vec<u64>,
    reveal_after: Option<usize>,
    reads: AtomicUsize,
}

impl LaggingIndex {
    fn new(log: Vec<RecordedEvent>, hidden: &[u64]) -> Self {
        Self {
            log,
            hidden: hidden.to_vec(),
            reveal_after: None,
            reads: AtomicUsize::new(0),
        }
    }

    fn shown(&self, event: &RecordedEvent) -> bool {
        let revealed = self
            .reveal_after
            .is_some_and(|n| self.reads.load(Ordering::SeqCst) >= n);
        revealed || !self.hidden.contains(&event.global_position.unwrap())
    }
}

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
    async fn read_index(
        &self,
        filter: &GlobalFilter,
        from: u64,
        limit: usize,
        _: usize,
    ) -> Result<IndexPage, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let mut events = Vec::new();
        let mut next = from;
        for e in self
            .log
            .iter()
            .filter(|e| e.global_position.unwrap() >= from)
        {
            if !self.shown(e) {
                // A hole is visible only if the index shows something after it.
                let after = self
                    .log
                    .iter()
                    .any(|later| later.global_position > e.global_position && self.shown(later));
                let end = if after { IndexEnd::Hole } else { IndexEnd::End };
                return Ok(IndexPage { events, next, end });
            }
            if filter.matches(e) {
                if events.len() == limit {
                    return Ok(IndexPage {
                        events,
                        next,
                        end: IndexEnd::Full,
                    });
                }
                events.push(e.clone());
            }
            next = e.global_position.unwrap() + 1;
        }
        Ok(IndexPage {
            events,
            next,
            end: IndexEnd::End,
        })
    }
    async fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.log.len() as u64)
    }
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.global_position.unwrap()).collect()
}

fn history() -> Vec<RecordedEvent> {
    vec![
        recorded("A-1", 1, "X"),
        recorded("A-1", 2, "Y"),
        recorded("B-1", 3, "X"),
        recorded("B-1", 4, "X"),
        recorded("A-1", 5, "Y"),
    ]
}

#[tokio::test]
async fn a_global_page_stops_before_the_first_position_the_index_does_not_show() {
    // Position 3 is sequenced but its index entry never shows up.
    let store = EventStore::new(LaggingIndex::new(history(), &[3]));
    let page = store
        .read_global(&GlobalFilter::All, None, 100)
        .await
        .unwrap();
    assert_eq!((positions(&page.events), page.next), (vec![1, 2], 3));
    // A reader that follows `next` stays at the hole: it never skips position 3.
    let page = store
        .read_global(&GlobalFilter::All, Some(3), 100)
        .await
        .unwrap();
    assert_eq!((positions(&page.events), page.next), (vec![], 3));
}

#[tokio::test]
async fn type_and_category_pages_stop_before_any_hidden_position_and_pass_over_the_others() {
    let store = EventStore::new(LaggingIndex::new(history(), &[3]));
    let x = GlobalFilter::EventType(EventType::parse("X", "t").unwrap());
    // X events are at 1, 3 and 4; the index shows every position but 3. Position 2 (a Y)
    // is passed over, and the page stops at the hole.
    let page = store.read_global(&x, None, 100).await.unwrap();
    assert_eq!((positions(&page.events), page.next), (vec![1], 3));
    let page = store.read_global(&x, Some(3), 100).await.unwrap();
    assert_eq!((positions(&page.events), page.next), (vec![], 3));
    // Category B is 3 and 4: its first event is hidden, so nothing may be returned, and
    // `next` moves over what A had before the hole.
    let b = GlobalFilter::Category(Category::parse("B", "c").unwrap());
    let page = store.read_global(&b, Some(1), 100).await.unwrap();
    assert_eq!((positions(&page.events), page.next), (vec![], 3));
    // A hole holds back every filter, since the hidden position could be of any type: Y
    // gets position 2, not 5.
    let y = GlobalFilter::EventType(EventType::parse("Y", "t").unwrap());
    let page = store.read_global(&y, None, 100).await.unwrap();
    assert_eq!((positions(&page.events), page.next), (vec![2], 3));
    // Once shown, the rest follows.
    let mut log = LaggingIndex::new(history(), &[3]);
    log.reveal_after = Some(1);
    let page = EventStore::new(log)
        .read_global(&y, None, 100)
        .await
        .unwrap();
    assert_eq!((positions(&page.events), page.next), (vec![2, 5], 6));
}

#[tokio::test]
async fn a_read_waits_briefly_for_a_lagging_index_and_then_returns_everything() {
    let mut log = LaggingIndex::new(history(), &[3, 5]);
    log.reveal_after = Some(2);
    let store = EventStore::new(log);
    let page = store
        .read_global(&GlobalFilter::All, None, 100)
        .await
        .unwrap();
    assert_eq!(
        (positions(&page.events), page.next),
        (vec![1, 2, 3, 4, 5], 6)
    );
}

#[tokio::test]
async fn the_last_positions_handed_out_are_waited_for_even_without_a_visible_hole() {
    // The counter says 5, the index shows 1..=4 and nothing after.
    let store = EventStore::new(LaggingIndex::new(history(), &[5]));
    let page = store
        .read_global(&GlobalFilter::All, None, 100)
        .await
        .unwrap();
    assert_eq!((positions(&page.events), page.next), (vec![1, 2, 3, 4], 5));
    let reads = store.log().reads.load(Ordering::SeqCst);
    assert_eq!(reads, 1 + eventstore_core::INDEX_LAG_WAITS.len());
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
    // `next` passes over position 4 (a C), which the read saw before it found the page full.
    assert_eq!((positions, page.next), (vec![1, 3], 5));
    let page = store.read_global(&a, Some(5), 2).await.unwrap();
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
