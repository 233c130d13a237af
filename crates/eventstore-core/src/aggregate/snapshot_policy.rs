//! Snapshot policy: [`SnapshotMode`], whether a load starts from a snapshot, and when and
//! how a command writes one.

use super::{Aggregate, Repository};
use crate::snapshot::{Snapshot, SnapshotStore, MAX_SNAPSHOT_STATE_BYTES};
use crate::{EventData, EventLog, StoreError, StreamId, Timestamp};

/// How a repository uses snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Load from snapshots; write them after the command's events are stored, awaited, with
    /// errors logged and ignored. Right for Lambda, which freezes background work once it
    /// has answered.
    Inline,
    /// Load from snapshots; write them on a background task, so the command returns first
    /// (without a running tokio runtime this falls back to `Inline`).
    Background,
    /// Neither read nor write snapshots: every load replays the whole stream.
    Off,
}

impl<A, L> Repository<A, L>
where
    A: Aggregate,
    L: EventLog + SnapshotStore + Clone + 'static,
{
    /// The snapshot's state if there is one in this aggregate's state schema that decodes.
    /// Anything else (none, another schema, a broken one, a failed read) means a full
    /// rebuild from events, never a failed load.
    pub(super) async fn usable_snapshot(&self, stream: &StreamId) -> Option<(A, u64)> {
        if self.snapshot_mode == SnapshotMode::Off {
            return None;
        }
        let snapshot = match self.store.log().load_snapshot(stream).await {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(err) => {
                tracing::warn!(%stream, error = %err, "snapshot unreadable; rebuilding from events");
                return None;
            }
        };
        self.usable(stream, snapshot)
    }

    /// The snapshot's state, if it is in this aggregate's state schema and decodes.
    pub(super) fn usable(&self, stream: &StreamId, snapshot: Snapshot) -> Option<(A, u64)> {
        if snapshot.schema_version != A::STATE_SCHEMA_VERSION {
            tracing::info!(%stream, schema = snapshot.schema_version, "snapshot of another state schema ignored");
            return None;
        }
        match serde_json::from_str(snapshot.state.as_json()) {
            Ok(state) => Some((state, snapshot.version)),
            Err(err) => {
                tracing::warn!(%stream, error = %err, "snapshot does not decode; rebuilding from events");
                None
            }
        }
    }

    pub(super) fn crosses_snapshot_point(&self, before: u64, after: u64) -> bool {
        self.snapshot_mode != SnapshotMode::Off
            && self.snapshot_every > 0
            && after / self.snapshot_every > before / self.snapshot_every
    }

    /// Writes a snapshot of `state` at `version`. Never fails the command: errors are logged.
    pub(super) async fn snapshot(&self, stream: &StreamId, state: &A, version: u64) {
        let snapshot = match snapshot_of(state, version) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(%stream, error = %err, "snapshot not written");
                return;
            }
        };
        let (log, stream) = (self.store.log().clone(), stream.clone());
        let write = async move {
            if let Err(err) = log.save_snapshot(&stream, &snapshot).await {
                tracing::warn!(%stream, error = %err, "snapshot not written");
            }
        };
        match (self.snapshot_mode, tokio::runtime::Handle::try_current()) {
            (SnapshotMode::Background, Ok(runtime)) => {
                runtime.spawn(write);
            }
            (SnapshotMode::Off, _) => {}
            _ => write.await,
        }
    }
}

fn snapshot_of<A: Aggregate>(state: &A, version: u64) -> Result<Snapshot, StoreError> {
    let text =
        serde_json::to_string(state).map_err(|e| StoreError::internal("encoding a snapshot", e))?;
    if text.len() > MAX_SNAPSHOT_STATE_BYTES {
        return Err(StoreError::PayloadTooLarge {
            what: "snapshot state".into(),
            actual: text.len(),
            limit: MAX_SNAPSHOT_STATE_BYTES,
        });
    }
    Ok(Snapshot {
        version,
        schema_version: A::STATE_SCHEMA_VERSION,
        state: EventData::from_json(text, "state")?,
        created_at: Timestamp::now(),
    })
}
