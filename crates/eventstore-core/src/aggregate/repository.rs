//! [`Repository`]: its settings, and loading an aggregate from its snapshot and events.

use std::marker::PhantomData;

use super::{decode_event, Aggregate, SnapshotMode};
use crate::limits::MAX_READ_LIMIT;
use crate::snapshot::SnapshotStore;
use crate::store::{Direction, StreamRead};
use crate::upcast::Upcasters;
use crate::{EventLog, EventStore, RecordedEvent, StoreError, StreamId};

/// An aggregate as loaded: its state, the version it reflects, and what loading cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    pub state: A,
    /// The stream version the state reflects; 0 for a new aggregate.
    pub version: u64,
    /// Events read and applied by this load.
    pub events_read: u64,
    /// The version of the snapshot the load started from, if it used one.
    pub snapshot_version: Option<u64>,
}

/// Most loads and saves one command makes before giving up on a hot aggregate.
pub const DEFAULT_COMMAND_ATTEMPTS: u32 = 5;

/// Loads and saves aggregates of type `A` in the store.
#[derive(Debug, Clone)]
pub struct Repository<A, L> {
    pub(super) store: EventStore<L>,
    upcasters: Upcasters,
    pub(super) snapshot_every: u64,
    pub(super) snapshot_mode: SnapshotMode,
    pub(super) attempts: u32,
    aggregate: PhantomData<fn() -> A>,
}

impl<A, L> Repository<A, L>
where
    A: Aggregate,
    L: EventLog + SnapshotStore + Clone + 'static,
{
    pub fn new(store: EventStore<L>) -> Self {
        Self {
            store,
            upcasters: Upcasters::new(),
            snapshot_every: A::SNAPSHOT_EVERY,
            snapshot_mode: SnapshotMode::Inline,
            attempts: DEFAULT_COMMAND_ATTEMPTS,
            aggregate: PhantomData,
        }
    }

    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Overrides `A::SNAPSHOT_EVERY`; 0 never snapshots.
    pub fn with_snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_every = events;
        self
    }

    pub fn with_snapshot_mode(mut self, mode: SnapshotMode) -> Self {
        self.snapshot_mode = mode;
        self
    }

    /// Overrides [`DEFAULT_COMMAND_ATTEMPTS`] (at least 1).
    pub fn with_command_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The stream of aggregate `id`: `<CATEGORY>-<id>`.
    pub fn stream_id(id: &str) -> Result<StreamId, StoreError> {
        Ok(StreamId::parse(&format!("{}-{id}", A::CATEGORY), "id")?)
    }

    /// The aggregate's current state: the latest snapshot if it is usable, then every event
    /// after it, upcast, page by page.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, StoreError> {
        let stream = Self::stream_id(id)?;
        let mut loaded = match self.usable_snapshot(&stream).await {
            Some((state, version)) => Loaded {
                state,
                version,
                events_read: 0,
                snapshot_version: Some(version),
            },
            None => Loaded {
                state: A::default(),
                version: 0,
                events_read: 0,
                snapshot_version: None,
            },
        };
        let mut from = loaded.version + 1;
        loop {
            let read = StreamRead {
                from: Some(from),
                direction: Direction::Forward,
                limit: MAX_READ_LIMIT,
            };
            let page = match self.store.read_stream(&stream, read).await {
                Ok(page) => page,
                Err(StoreError::StreamNotFound(_)) => return Ok(loaded),
                Err(e) => return Err(e),
            };
            for event in page.events {
                let version = event.version;
                let domain = self.decode(event)?;
                loaded.state.apply(&domain);
                loaded.version = version;
                loaded.events_read += 1;
            }
            match page.next {
                Some(next) => from = next,
                None => return Ok(loaded),
            }
        }
    }

    fn decode(&self, event: RecordedEvent) -> Result<A::Event, StoreError> {
        let event = self.upcasters.upcast(event)?;
        decode_event(&event.event_type, &event.data)
    }
}
