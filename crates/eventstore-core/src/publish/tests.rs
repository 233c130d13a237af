#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::memory::{InMemoryBus, InMemoryPublisherStore};
use super::*;
use crate::memory::InMemoryLog;
use crate::{
    AppendBatch, Category, EventData, EventStore, EventType, ExpectedVersion, GlobalFilter,
    NewEvent, StreamId,
};

const FOREVER: Duration = Duration::from_secs(3600);

type TestPublisher = Publisher<InMemoryLog, InMemoryBus, InMemoryPublisherStore>;

async fn append(store: &EventStore<InMemoryLog>, stream: &str, sizes: &[usize]) {
    let events = sizes
        .iter()
        .map(|n| {
            let data = EventData::from_json(format!("\"{}\"", "x".repeat(*n)), "data").unwrap();
            NewEvent::new(EventType::parse("Happened", "t").unwrap(), data)
        })
        .collect();
    store
        .append(
            &StreamId::parse(stream, "s").unwrap(),
            ExpectedVersion::Any,
            &AppendBatch::new(events).unwrap(),
        )
        .await
        .unwrap();
}

fn publisher(store: &EventStore<InMemoryLog>, filter: GlobalFilter) -> TestPublisher {
    configured(store, PublisherConfig::new("bus", "eventstore", filter))
}

fn configured(store: &EventStore<InMemoryLog>, config: PublisherConfig) -> TestPublisher {
    Publisher::new(
        store.clone(),
        InMemoryBus::new(EVENTBRIDGE_LIMITS),
        InMemoryPublisherStore::new(),
        config,
    )
}

fn positions(entries: &[BusEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.position).collect()
}

#[tokio::test]
async fn it_publishes_every_event_in_global_order_in_batches_of_ten_then_stops() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &[1; 15]).await;
    append(&store, "B-1", &[1; 8]).await;
    let p = publisher(&store, GlobalFilter::All);
    let report = p.publish(None, FOREVER).await.unwrap();
    assert_eq!(
        report,
        PublishReport {
            published: 23,
            parked: 0,
            requests: 3,
            checkpoint: 24,
            caught_up: true,
        }
    );
    assert_eq!(
        positions(&p.bus().published()),
        (1..=23).collect::<Vec<_>>()
    );
    assert_eq!(p.bus().requests(), [10, 10, 3]);
    let first = &p.bus().published()[0];
    assert_eq!(first.detail_type, "Happened");
    assert_eq!(first.resources, ["eventstore:stream/A-1"]);
    let detail: serde_json::Value = serde_json::from_str(&first.detail).unwrap();
    assert_eq!(detail["eventId"], first.event_id.to_string());
    assert_eq!(detail["globalPosition"], 1);
    // Nothing new: nothing sent.
    let again = p.publish(None, FOREVER).await.unwrap();
    assert_eq!((again.published, again.requests), (0, 0));
}

#[tokio::test]
async fn a_batch_holds_at_most_256_kb_and_an_entry_over_it_is_parked_not_sent() {
    let store = EventStore::new(InMemoryLog::new());
    // 100 KB, 100 KB, 100 KB (three do not fit one request), then an event within the
    // store's 256 KB limit whose entry, with its envelope, is over EventBridge's (no request
    // can carry it), then a small one.
    append(&store, "A-1", &[100_000, 100_000, 100_000, 262_000, 10]).await;
    let p = publisher(&store, GlobalFilter::All);
    let report = p.publish(None, FOREVER).await.unwrap();
    assert_eq!((report.published, report.parked), (4, 1));
    assert_eq!(p.bus().requests(), [2, 2]);
    assert_eq!(positions(&p.bus().published()), [1, 2, 3, 5]);
    let parked = p.checkpoints().parked("bus").await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, 4);
    assert!(
        parked[0].reason.contains("over the bus's limit of 262144"),
        "{}",
        parked[0].reason
    );
}

#[tokio::test]
async fn only_the_failed_entries_of_a_batch_are_sent_again() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &[1; 5]).await;
    let p = publisher(&store, GlobalFilter::All);
    p.bus().fail_entries(&[1, 3]);
    p.bus().fail_request();
    let report = p.publish(None, FOREVER).await.unwrap();
    assert_eq!((report.published, report.requests), (5, 3));
    assert_eq!(p.bus().requests(), [5, 2, 2]);
    assert_eq!(positions(&p.bus().published()), [1, 3, 5, 2, 4]);
}

#[tokio::test]
async fn entries_that_keep_failing_fail_the_run_and_the_checkpoint_stays() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &[1; 3]).await;
    let mut config = PublisherConfig::new("bus", "eventstore", GlobalFilter::All);
    config.attempts = 2;
    let p = configured(&store, config);
    p.bus().fail_entries(&[2]);
    p.bus().fail_entries(&[0]);
    let err = p.publish(None, FOREVER).await.unwrap_err();
    assert!(
        matches!(err.source, StoreError::Unavailable { .. }),
        "{err}"
    );
    assert_eq!((err.report.published, err.report.checkpoint), (0, 1));
    assert_eq!(p.checkpoints().checkpoint("bus").await.unwrap(), 1);
    // The next run sends the whole page again: at least once, never skipped.
    let report = p.publish(None, FOREVER).await.unwrap();
    assert_eq!(report.checkpoint, 4);
    assert_eq!(positions(&p.bus().published()), [1, 2, 1, 2, 3]);
}

/// A category whose next event is further on than one read passes over: the publisher
/// keeps the progress of each empty page and reads on, rather than stopping there for
/// good.
#[tokio::test]
async fn a_filtered_publisher_reads_on_past_pages_of_other_events() {
    let store = EventStore::new(InMemoryLog::passing_at_most(10));
    append(&store, "A-1", &[1]).await;
    append(&store, "B-1", &[1; 25]).await;
    append(&store, "A-2", &[1]).await;
    let p = publisher(
        &store,
        GlobalFilter::Category(Category::parse("A", "c").unwrap()),
    );
    let report = p.publish(None, FOREVER).await.unwrap();
    assert_eq!(positions(&p.bus().published()), [1, 27]);
    assert_eq!((report.checkpoint, report.caught_up), (28, true));
    // A category with no events at all ends at the end of the log, its checkpoint saved.
    let none = publisher(
        &store,
        GlobalFilter::Category(Category::parse("C", "c").unwrap()),
    );
    let report = none.publish(None, FOREVER).await.unwrap();
    assert!(none.bus().published().is_empty());
    assert_eq!((report.checkpoint, report.caught_up), (28, true));
}

/// Triggered by the counter's record of position `until`, a publisher that cannot read that
/// far yet (the sequencer writes positions just after the counter) waits a little, within
/// its budget, and then reports that it is not caught up.
#[tokio::test]
async fn a_publisher_triggered_past_what_is_readable_waits_and_is_not_caught_up() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &[1, 1]).await;
    let p = publisher(&store, GlobalFilter::All);
    let started = std::time::Instant::now();
    let report = p
        .publish(Some(3), Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(positions(&p.bus().published()), [1, 2]);
    assert_eq!((report.checkpoint, report.caught_up), (3, false));
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn a_filtered_publisher_sends_one_category_and_stops_at_until() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &[1, 1]).await;
    append(&store, "B-1", &[1]).await;
    append(&store, "A-2", &[1]).await;
    let p = publisher(
        &store,
        GlobalFilter::Category(Category::parse("A", "c").unwrap()),
    );
    let report = p.publish(None, FOREVER).await.unwrap();
    assert_eq!(positions(&p.bus().published()), [1, 2, 4]);
    assert!(report.caught_up);
    let mut config = PublisherConfig::new("bus", "eventstore", GlobalFilter::All);
    config.page = 2;
    let small = configured(&store, config);
    let report = small.publish(Some(2), FOREVER).await.unwrap();
    assert_eq!(
        report.checkpoint, 3,
        "stops once the checkpoint passes until"
    );
}

#[tokio::test]
async fn entries_the_bus_refuses_for_good_are_parked_and_the_rest_go_on() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &[1; 4]).await;
    let p = publisher(&store, GlobalFilter::All);
    p.bus().refuse_entries(&[1]);
    let report = p.publish(None, FOREVER).await.unwrap();
    assert_eq!(
        (report.published, report.parked, report.checkpoint),
        (3, 1, 5)
    );
    assert_eq!(positions(&p.bus().published()), [1, 3, 4]);
    let parked = p.checkpoints().parked("bus").await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (
            parked[0].position,
            parked[0].stream_id.as_str(),
            parked[0].event_type.as_str()
        ),
        (2, "A-1", "Happened")
    );
    assert_eq!(parked[0].reason, "the bus refused it: MalformedDetail");
}

#[tokio::test]
async fn a_failing_page_reports_what_the_pages_before_it_published_and_parked() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &[1; 4]).await;
    let mut config = PublisherConfig::new("bus", "eventstore", GlobalFilter::All);
    config.page = 2;
    config.attempts = 1;
    let p = configured(&store, config);
    p.bus().refuse_entries(&[0]);
    p.bus().fail_request();
    let failed = p.publish(None, FOREVER).await.unwrap_err();
    assert_eq!(
        (
            failed.report.published,
            failed.report.parked,
            failed.report.checkpoint
        ),
        (1, 1, 3),
        "the first page counted, the second not moved past"
    );
}

/// A store in which another run moves the checkpoint first, every time.
#[derive(Clone, Default)]
struct Raced(super::memory::InMemoryPublisherStore);

impl PublisherStore for Raced {
    async fn checkpoint(&self, publisher: &str) -> Result<u64, StoreError> {
        self.0.checkpoint(publisher).await
    }

    async fn advance(
        &self,
        publisher: &str,
        from: u64,
        to: u64,
        parked: &[ParkedEntry],
    ) -> Result<bool, StoreError> {
        // The other run got there first, and further.
        self.0.advance(publisher, from, to + 1, parked).await?;
        self.0.advance(publisher, from, to, parked).await
    }

    async fn parked(&self, publisher: &str) -> Result<Vec<ParkedEntry>, StoreError> {
        self.0.parked(publisher).await
    }
}

#[tokio::test]
async fn a_run_that_finds_the_checkpoint_moved_stops_and_never_moves_it_back() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &[1; 3]).await;
    let checkpoints = Raced::default();
    let p = Publisher::new(
        store.clone(),
        InMemoryBus::new(EVENTBRIDGE_LIMITS),
        checkpoints.clone(),
        PublisherConfig::new("bus", "eventstore", GlobalFilter::All),
    );
    let report = p.publish(None, FOREVER).await.unwrap();
    assert_eq!(report.published, 0, "the page is not counted as this run's");
    assert!(!report.caught_up);
    assert_eq!(checkpoints.checkpoint("bus").await.unwrap(), 5);
}
