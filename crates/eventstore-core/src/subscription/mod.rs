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
mod tests;
