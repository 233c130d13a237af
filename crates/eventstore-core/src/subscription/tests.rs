#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;

use super::*;
use crate::memory::{InMemoryLog, InMemoryProjections};
use crate::{AppendBatch, Category, EventData, EventType, ExpectedVersion, NewEvent, StreamId};

async fn append(store: &EventStore<InMemoryLog>, stream: &str, types: &[&str]) {
    let events = types
        .iter()
        .map(|t| {
            let data = EventData::from_json("{}".into(), "data").unwrap();
            NewEvent::new(EventType::parse(t, "t").unwrap(), data)
        })
        .collect();
    let stream = StreamId::parse(stream, "s").unwrap();
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            &AppendBatch::new(events).unwrap(),
        )
        .await
        .unwrap();
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().filter_map(|e| e.global_position).collect()
}

#[tokio::test]
async fn it_reads_the_history_then_follows_new_events_in_global_order() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &["X", "Y"]).await;
    append(&store, "B-1", &["X"]).await;
    let mut events = Subscription::new(store.clone(), InMemoryProjections::new(), "s").stream();
    let history: Vec<_> = events.by_ref().take(3).map(Result::unwrap).collect().await;
    assert_eq!(positions(&history), [1, 2, 3]);
    let writer = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        append(&writer, "A-1", &["Z"]).await;
    });
    let live = events.next().await.unwrap().unwrap();
    assert_eq!(
        (live.global_position, live.event_type.as_str()),
        (Some(4), "Z")
    );
}

#[tokio::test]
async fn the_checkpoint_moves_only_once_the_app_asks_for_the_next_event() {
    let store = EventStore::new(InMemoryLog::new());
    let checkpoints = InMemoryProjections::new();
    append(&store, "A-1", &["X", "X", "X"]).await;
    let mut events = Subscription::new(store.clone(), checkpoints.clone(), "s").stream();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.global_position, Some(1));
    assert_eq!(
        checkpoints.subscription("s").await.unwrap(),
        None,
        "not handled yet"
    );
    events.next().await.unwrap().unwrap();
    assert_eq!(checkpoints.subscription("s").await.unwrap(), Some(2));
    // The app stops while handling event 2: a new subscription delivers it again.
    drop(events);
    let mut again = Subscription::new(store, checkpoints.clone(), "s").stream();
    let redelivered = again.next().await.unwrap().unwrap();
    assert_eq!(redelivered.global_position, Some(2));
}

#[tokio::test]
async fn a_filtered_subscription_sees_only_its_category_and_saves_every_n() {
    let store = EventStore::new(InMemoryLog::new());
    let checkpoints = InMemoryProjections::new();
    for (stream, types) in [
        ("A-1", &["X"][..]),
        ("B-1", &["X", "X"]),
        ("A-2", &["Y", "Y"]),
    ] {
        append(&store, stream, types).await;
    }
    let mut events = Subscription::new(store, checkpoints.clone(), "s")
        .filter(GlobalFilter::Category(Category::parse("A", "c").unwrap()))
        .save_every(2)
        .stream();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(events.next().await.unwrap().unwrap());
    }
    assert_eq!(positions(&seen), [1, 4, 5]);
    assert!(seen.iter().all(|e| e.stream_id.as_str().starts_with("A-")));
    // Two handled (1 and 4): saved after the second; 5 is not handled yet.
    assert_eq!(checkpoints.subscription("s").await.unwrap(), Some(5));
}

#[tokio::test]
async fn it_starts_at_the_stored_checkpoint_else_where_it_is_told() {
    let store = EventStore::new(InMemoryLog::new());
    let checkpoints = InMemoryProjections::new();
    append(&store, "A-1", &["X", "X", "X", "X"]).await;
    let mut fresh = Subscription::new(store.clone(), checkpoints.clone(), "s")
        .start_at(3)
        .stream();
    assert_eq!(
        fresh.next().await.unwrap().unwrap().global_position,
        Some(3)
    );
    checkpoints
        .save_subscription("t", 2, false)
        .await
        .unwrap()
        .unwrap();
    let mut stored = Subscription::new(store, checkpoints, "t")
        .start_at(4)
        .stream();
    assert_eq!(
        stored.next().await.unwrap().unwrap().global_position,
        Some(2)
    );
}

/// Checkpoints that answer `Unavailable` to the first `failures` calls, as a throttled
/// table does; then `Internal` once asked to.
#[derive(Clone)]
struct Flaky {
    inner: InMemoryProjections,
    failures: std::sync::Arc<std::sync::atomic::AtomicU32>,
    broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Flaky {
    fn fail(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::internal("broken", "test"));
        }
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::unavailable("throttled", "test"));
        }
        Ok(())
    }
}

impl SubscriptionStore for Flaky {
    async fn subscription(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.fail()?;
        self.inner.subscription(name).await
    }

    async fn save_subscription(
        &self,
        name: &str,
        position: u64,
        force: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        self.fail()?;
        self.inner.save_subscription(name, position, force).await
    }
}

#[tokio::test]
async fn throttling_is_retried_and_any_other_failure_ends_the_stream_after_it_is_yielded() {
    let store = EventStore::new(InMemoryLog::new());
    append(&store, "A-1", &["X", "X", "X"]).await;
    let flaky = Flaky {
        inner: InMemoryProjections::new(),
        failures: std::sync::Arc::new(1.into()),
        broken: Default::default(),
    };
    let mut events = Subscription::new(store, flaky.clone(), "s").stream();
    // A throttled checkpoint read costs a pause, not an event.
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.global_position, Some(1));
    assert_eq!(flaky.failures.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Then the save after event 1 is throttled twice: retried, and event 2 follows.
    flaky.failures.store(2, std::sync::atomic::Ordering::SeqCst);
    let second = events.next().await.unwrap().unwrap();
    assert_eq!(second.global_position, Some(2));
    assert_eq!(flaky.failures.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(flaky.inner.subscription("s").await.unwrap(), Some(2));
    flaky
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = events.next().await.unwrap().unwrap_err();
    assert!(matches!(err, StoreError::Internal { .. }), "{err}");
    assert!(
        events.next().await.is_none(),
        "the stream ends after the error"
    );
    // Event 2 was handled but its checkpoint could not be saved: it comes again.
    assert_eq!(flaky.inner.subscription("s").await.unwrap(), Some(2));
}
