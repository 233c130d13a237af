//! [`Repository`]: its settings, and loading an aggregate from its snapshot and events.

use std::marker::PhantomData;

use super::{decode_event, Aggregate, SnapshotMode};
use crate::snapshot::{SnapshotStore, StateEvent};
use crate::upcast::Upcasters;
use crate::{EventLog, EventStore, StoreError, StreamId};

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
    /// This load read the event at `version` itself (or found the stream empty), rather
    /// than only a snapshot vouching for it: a write right after it need not check it.
    pub(super) read_head: bool,
}

/// Events a load asks the store for at a time. The store stops a page at 1 MB as well, so
/// a load costs about one request per MB of the stream after the snapshot.
const LOAD_PAGE_EVENTS: usize = 10_000;
/// Bytes of event payload a load holds at a time.
const LOAD_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// How far back a load looks for a snapshot when the repository writes none itself (one
/// may have come over HTTP).
const DEFAULT_SNAPSHOT_LOOKBACK: usize = 100;

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
    /// after it, upcast. Where the store reads the snapshot and the events after it together
    /// ([`SnapshotStore::latest`]: on DynamoDB one backward Query) that is the whole load
    /// when they fit its first page; otherwise the snapshot (if any) and then the events,
    /// page by page, as many events a page as the store returns in one request.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, StoreError> {
        let stream = Self::stream_id(id)?;
        let mut loaded = Loaded {
            state: A::default(),
            version: 0,
            events_read: 0,
            snapshot_version: None,
            read_head: false,
        };
        if self.snapshot_mode != SnapshotMode::Off {
            // The repository snapshots the first command that crosses a multiple of
            // `snapshot_every`, so the newest snapshot is fewer than that many events from
            // the end; further back (a snapshot that failed), the load takes one more read.
            let within = match self.snapshot_every {
                0 => DEFAULT_SNAPSHOT_LOOKBACK,
                every => usize::try_from(every).unwrap_or(usize::MAX),
            };
            if let Some(tail) = self.store.log().latest(&stream, within).await? {
                match tail.snapshot.map(|snapshot| self.usable(&stream, snapshot)) {
                    Some(Some((state, version))) => {
                        loaded.state = state;
                        loaded.version = version;
                        loaded.snapshot_version = Some(version);
                    }
                    // An unusable snapshot: the events read are only those after it.
                    Some(None) => return self.read_forward(&stream, loaded).await,
                    // No snapshot: the events read are the stream's from version 1.
                    None => {}
                }
                self.apply(&stream, &mut loaded, tail.events)?;
                if tail.complete {
                    return Ok(loaded);
                }
                return self.read_forward(&stream, loaded).await;
            }
            if let Some((state, version)) = self.usable_snapshot(&stream).await {
                loaded.state = state;
                loaded.version = version;
                loaded.snapshot_version = Some(version);
            }
        }
        self.read_forward(&stream, loaded).await
    }

    /// The events after `loaded.version`, folded in, page by page.
    async fn read_forward(
        &self,
        stream: &StreamId,
        mut loaded: Loaded<A>,
    ) -> Result<Loaded<A>, StoreError> {
        loop {
            let page = self
                .store
                .log()
                .read_stream_state(
                    stream,
                    loaded.version + 1,
                    LOAD_PAGE_EVENTS,
                    LOAD_PAGE_BYTES,
                )
                .await?;
            let more = page.more;
            self.apply(stream, &mut loaded, page.events)?;
            if !more {
                return Ok(loaded);
            }
        }
    }

    fn apply(
        &self,
        stream: &StreamId,
        loaded: &mut Loaded<A>,
        events: Vec<StateEvent>,
    ) -> Result<(), StoreError> {
        if let Some(last) = events.last() {
            loaded.read_head = last.version == loaded.version;
        }
        for event in events {
            if event.version <= loaded.version {
                continue;
            }
            if event.version != loaded.version + 1 {
                return Err(StoreError::corrupt(format!(
                    "stream read skipped from version {} to {}",
                    loaded.version, event.version
                )));
            }
            let version = event.version;
            let domain = self.decode(stream, event)?;
            loaded.state.apply(&domain);
            loaded.version = version;
            loaded.events_read += 1;
            loaded.read_head = true;
        }
        Ok(())
    }

    fn decode(&self, stream: &StreamId, event: StateEvent) -> Result<A::Event, StoreError> {
        let event = self.upcasters.upcast_state(stream, event)?;
        decode_event(&event.event_type, &event.data)
    }
}
