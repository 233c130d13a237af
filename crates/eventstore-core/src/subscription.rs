//! Catch-up subscriptions: an app follows the global order (or one event type or category)
//! from its checkpoint, through the history and then live, as a [`futures::Stream`].
//!
//! Delivery is at least once, in global order, never skipping: the checkpoint is saved only
//! after the app has handled an event, which the subscription learns when the app asks for
//! the next one. An app that stops between handling an event and asking for the next one
//! sees that event again when it restarts. Once caught up, the subscription long-polls
//! ([`EventStore::read_global_waiting`]), so a new event arrives within a poll interval.

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};

use crate::projection::SubscriptionStore;
use crate::{EventLog, EventStore, GlobalFilter, RecordedEvent, StoreError, MAX_READ_WAIT};

/// The first and the longest pause before retrying a read or a save that found the store
/// throttled or unavailable. The subscription retries those forever: a consumer must not
/// need a restart because DynamoDB was busy for a minute.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LONGEST: Duration = Duration::from_secs(5);

/// A named catch-up subscription, configured and not started: [`Subscription::stream`]
/// starts it.
///
/// ```
/// # use eventstore_core::{memory::{InMemoryLog, InMemoryProjections}, *};
/// # use futures::StreamExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = EventStore::new(InMemoryLog::new());
/// let checkpoints = InMemoryProjections::new();
/// # let data = EventData::from_json("{}".into(), "data")?;
/// # let batch = AppendBatch::new(vec![NewEvent::new(EventType::parse("Opened", "t")?, data)])?;
/// # store.append(&StreamId::parse("Account-1", "s")?, ExpectedVersion::Any, &batch).await?;
/// let mut events = Subscription::new(store, checkpoints, "printer")
///     .filter(GlobalFilter::Category(Category::parse("Account", "category")?))
///     .stream();
/// while let Some(event) = events.next().await {
///     let event = event?;
///     println!("{} {} {}", event.stream_id, event.event_type, event.data.as_json());
///     # break;
/// }
/// # Ok(())
/// # }
/// ```
pub struct Subscription<L, C> {
    store: EventStore<L>,
    checkpoints: C,
    name: String,
    filter: GlobalFilter,
    start: u64,
    save_every: u64,
    page: usize,
}

impl<L, C> Subscription<L, C>
where
    L: EventLog + 'static,
    C: SubscriptionStore + 'static,
{
    /// The subscription `name`, with its checkpoint in `checkpoints`: the store's own
    /// (`/subscriptions/{name}`, the DynamoDB checkpoints table) or the app's, any
    /// [`SubscriptionStore`].
    pub fn new(store: EventStore<L>, checkpoints: C, name: impl Into<String>) -> Self {
        Self {
            store,
            checkpoints,
            name: name.into(),
            filter: GlobalFilter::All,
            start: 1,
            save_every: 1,
            page: 100,
        }
    }

    /// Only events of one type or category (default: all).
    pub fn filter(mut self, filter: GlobalFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Where to start when no checkpoint is stored yet (default 1, the beginning).
    pub fn start_at(mut self, position: u64) -> Self {
        self.start = position.max(1);
        self
    }

    /// Save the checkpoint after every `n` handled events rather than after each (default
    /// 1), and always before waiting for new ones. Fewer writes; after a crash, up to `n`
    /// events come again.
    pub fn save_every(mut self, n: u64) -> Self {
        self.save_every = n.max(1);
        self
    }

    /// The events, from the checkpoint on, forever. An error other than throttling (which is
    /// retried) ends the stream after it is yielded; the checkpoint then holds the last
    /// handled event, so a new subscription resumes exactly there.
    pub fn stream(self) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        let state = Cursor {
            sub: self,
            from: None,
            buffer: VecDeque::new(),
            handled: None,
            unsaved: 0,
            failed: false,
        };
        futures::stream::unfold(state, |mut cursor| async move {
            if cursor.failed {
                return None;
            }
            let item = cursor.advance().await;
            cursor.failed = item.is_err();
            Some((item, cursor))
        })
        .boxed()
    }
}

/// Where a running subscription is.
struct Cursor<L, C> {
    sub: Subscription<L, C>,
    /// The next position to read; `None` until the stored checkpoint is read.
    from: Option<u64>,
    buffer: VecDeque<RecordedEvent>,
    /// The checkpoint that the last yielded event, once handled, moves to.
    handled: Option<u64>,
    /// Handled events since the checkpoint was last saved.
    unsaved: u64,
    failed: bool,
}

impl<L: EventLog, C: SubscriptionStore> Cursor<L, C> {
    async fn advance(&mut self) -> Result<RecordedEvent, StoreError> {
        // Asked for the next event: the one yielded before it has been handled.
        if let Some(checkpoint) = self.handled.take() {
            self.unsaved += 1;
            if self.unsaved >= self.sub.save_every || self.buffer.is_empty() {
                self.save(checkpoint).await?;
            }
        }
        let mut from = match self.from {
            Some(from) => from,
            None => {
                let stored = retrying(|| self.sub.checkpoints.subscription(&self.sub.name)).await?;
                stored.unwrap_or(self.sub.start).max(1)
            }
        };
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.from = Some(from);
                self.handled = event.global_position.map(|p| p.saturating_add(1));
                return Ok(event);
            }
            let (filter, page) = (&self.sub.filter, self.sub.page);
            let read = retrying(|| {
                self.sub
                    .store
                    .read_global_waiting(filter, Some(from), page, MAX_READ_WAIT)
            })
            .await?;
            from = read.next;
            self.buffer.extend(read.events);
        }
    }

    async fn save(&mut self, checkpoint: u64) -> Result<(), StoreError> {
        let (checkpoints, name) = (&self.sub.checkpoints, self.sub.name.as_str());
        match retrying(|| checkpoints.save_subscription(name, checkpoint, false)).await? {
            Ok(()) => {}
            // Another consumer of the same name is further on. Not moving it back keeps
            // its progress; this one still delivers everything after its own position.
            Err(stored) => tracing::warn!(
                subscription = name,
                checkpoint,
                stored,
                "the stored checkpoint is ahead of this subscriber; left as it is"
            ),
        }
        self.unsaved = 0;
        Ok(())
    }
}

/// Runs `op` until it does not fail with `Unavailable`, pausing longer each time.
async fn retrying<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = RETRY_FIRST;
    loop {
        match op().await {
            Err(err @ StoreError::Unavailable { .. }) => {
                tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "subscription: store unavailable; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_LONGEST);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
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
}
