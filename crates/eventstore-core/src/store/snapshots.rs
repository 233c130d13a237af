//! Snapshots through the store: storing one a client made (checked against the stream) and
//! reading the stored one.

use super::EventStore;
use crate::limits::MAX_POSITION;
use crate::snapshot::{Snapshot, SnapshotStore, SnapshotWrite, MAX_SNAPSHOT_STATE_BYTES};
use crate::{EventData, EventLog, StoreError, StreamId, Timestamp, ValidationError};

impl<L: EventLog + SnapshotStore> EventStore<L> {
    /// Stores a snapshot a client made of `stream` at `version` (the HTTP route). The
    /// version must exist in the stream; a newer stored snapshot is never replaced.
    pub async fn put_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        schema_version: u32,
        state: EventData,
    ) -> Result<Snapshot, StoreError> {
        if version == 0 || version > MAX_POSITION {
            return Err(ValidationError::new(
                "version",
                format!("must be between 1 and {MAX_POSITION}"),
            )
            .into());
        }
        if schema_version == 0 {
            return Err(ValidationError::new("schemaVersion", "must be at least 1").into());
        }
        let size = state.as_json().len();
        if size > MAX_SNAPSHOT_STATE_BYTES {
            return Err(StoreError::PayloadTooLarge {
                what: "state".into(),
                actual: size,
                limit: MAX_SNAPSHOT_STATE_BYTES,
            });
        }
        // Streams only grow, so a version seen here stays valid.
        let current = self.log.tail(stream, 0).await?.version;
        if version > current {
            return Err(ValidationError::new(
                "version",
                format!("is beyond the stream's current version {current}"),
            )
            .into());
        }
        let snapshot = Snapshot {
            version,
            schema_version,
            state,
            created_at: Timestamp::now(),
        };
        match self.log.save_snapshot(stream, &snapshot).await? {
            SnapshotWrite::Stored => Ok(snapshot),
            SnapshotWrite::Outdated { stored_version } => {
                Err(StoreError::SnapshotOutdated { stored_version })
            }
        }
    }

    /// The stream's snapshot, if one is stored.
    pub async fn get_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.log.load_snapshot(stream).await
    }
}
