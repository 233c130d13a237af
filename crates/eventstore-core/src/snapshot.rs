//! Snapshots: a stream's folded state at a version, so that loading reads only the events
//! after it. One snapshot per stream; a newer one replaces an older one, never the reverse.

use std::future::Future;

use crate::{EventData, StoreError, StreamId, Timestamp};

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
}
