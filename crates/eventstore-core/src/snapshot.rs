//! Snapshots: a stream's folded state at a version, so that loading reads only the events
//! after it. One snapshot per stream; a newer one replaces an older one, never the reverse.

use std::future::Future;

use crate::{EventData, EventType, RecordedEvent, StoreError, StreamId, Timestamp};

/// Largest snapshot state, in bytes of JSON text: DynamoDB's 400 KB item limit, less room
/// for the snapshot's other attributes.
pub const MAX_SNAPSHOT_STATE_BYTES: usize = 350 * 1024;

/// A stream's state at `version`, as JSON text, in the aggregate's state schema
/// `schema_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: u64,
    pub schema_version: u32,
    pub state: EventData,
    pub created_at: Timestamp,
}

/// What a conditional snapshot write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotWrite {
    /// Stored: there was none, or the stored one was at this version or older.
    Stored,
    /// Not stored: the stored snapshot is newer.
    Outdated { stored_version: u64 },
}

/// What folding an event into an aggregate's state needs of it, and no more: loads read
/// just these attributes ([`EventLog::read_stream_state`](crate::EventLog::read_stream_state)).
#[derive(Debug, Clone, PartialEq)]
pub struct StateEvent {
    pub version: u64,
    pub event_type: EventType,
    pub schema_version: u32,
    pub data: EventData,
}

impl StateEvent {
    pub fn payload_bytes(&self) -> usize {
        self.data.as_json().len()
    }
}

impl From<RecordedEvent> for StateEvent {
    fn from(event: RecordedEvent) -> Self {
        Self {
            version: event.version,
            event_type: event.event_type,
            schema_version: event.schema_version,
            data: event.data,
        }
    }
}

/// A page of [`StateEvent`]s, and whether the stream has more after it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatePage {
    pub events: Vec<StateEvent>,
    pub more: bool,
}

/// A stream's newest snapshot and the events after it, read together where the store can
/// ([`SnapshotStore::latest`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StateTail {
    /// The newest snapshot, if one was found.
    pub snapshot: Option<Snapshot>,
    /// In version order: with a snapshot, the events after its version, possibly preceded
    /// by the one at its version (read to prove it exists; not to be applied); without
    /// one, the stream's events from version 1. Empty and not `complete`: nothing usable was
    /// read, the caller reads forward (from the snapshot's version, or from 1).
    pub events: Vec<StateEvent>,
    /// Nothing follows the last event (or the snapshot, when `events` is empty).
    pub complete: bool,
}

/// Where snapshots live. Implemented by the DynamoDB adapter (same table as the events) and
/// by the in-memory log.
pub trait SnapshotStore: Send + Sync {
    fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Stores `snapshot` unless a newer one is stored.
    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<SnapshotWrite, StoreError>> + Send;

    /// The newest snapshot and the events after it in as few reads as the store can (the
    /// DynamoDB adapter: one backward Query from the stream's end), looking back over at
    /// most `within` events for it. `None`: the store has no such read, and the caller loads
    /// the snapshot and reads the events itself.
    fn latest(
        &self,
        stream: &StreamId,
        within: usize,
    ) -> impl Future<Output = Result<Option<StateTail>, StoreError>> + Send {
        let _ = (stream, within);
        async { Ok(None) }
    }
}
