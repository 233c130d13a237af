//! An [`EventLog`] in memory: for unit tests of the store's semantics and of code built on
//! it. It assigns global positions at write time, as the sequencer does in DynamoDB.
//! [`InMemoryProjections`] keeps projection rows and checkpoints beside it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

mod projections;

pub use projections::InMemoryProjections;

use crate::port::LogPage;
use crate::snapshot::{Snapshot, SnapshotStore, SnapshotWrite};
use crate::{
    EventLog, GlobalFilter, IndexEnd, IndexPage, NewEvent, RecordedEvent, StoreError, StreamId,
    StreamTail, Timestamp, WriteConflict,
};

#[derive(Debug, Default)]
struct State {
    streams: BTreeMap<StreamId, Vec<RecordedEvent>>,
    global: Vec<RecordedEvent>,
    snapshots: BTreeMap<StreamId, Snapshot>,
}

/// An in-memory event log and snapshot store. A clone is a handle to the same log, as a
/// clone of the DynamoDB one is a handle to the same table; separate `new()` logs share
/// nothing.
#[derive(Debug, Default, Clone)]
pub struct InMemoryLog {
    state: Arc<Mutex<State>>,
    /// Positions one global-order read may pass over, as the DynamoDB adapter bounds a
    /// type or category read; `None` for no bound.
    passing_at_most: Option<usize>,
}

impl InMemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A log whose global-order reads pass over at most `positions` positions each, and
    /// then return what they have with `next` after them (a full page, perhaps empty).
    pub fn passing_at_most(positions: usize) -> Self {
        Self {
            passing_at_most: Some(positions.max(1)),
            ..Self::default()
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::corrupt("in-memory log poisoned by a panic"))
    }
}

fn take_page(events: Vec<RecordedEvent>, limit: usize, max_bytes: usize) -> LogPage {
    let total = events.len();
    let mut page = Vec::new();
    let mut bytes = 0;
    for event in events {
        if page.len() == limit || (bytes + event.payload_bytes() > max_bytes && !page.is_empty()) {
            break;
        }
        bytes += event.payload_bytes();
        page.push(event);
    }
    LogPage {
        more: page.len() < total,
        events: page,
    }
}

impl EventLog for InMemoryLog {
    async fn tail(&self, stream: &StreamId, ids: usize) -> Result<StreamTail, StoreError> {
        let state = self.lock()?;
        let events = state.streams.get(stream).map(Vec::as_slice).unwrap_or(&[]);
        Ok(StreamTail {
            version: events.len() as u64,
            last_ids: events[events.len().saturating_sub(ids)..]
                .iter()
                .map(|e| e.event_id)
                .collect(),
        })
    }

    async fn write(
        &self,
        stream: &StreamId,
        first: u64,
        events: &[NewEvent],
        created_at: Timestamp,
        require_previous: bool,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let mut state = self.lock()?;
        let current = state.streams.get(stream).map_or(0, Vec::len) as u64;
        if current >= first {
            return Ok(Err(WriteConflict::VersionTaken));
        }
        if current + 1 < first {
            if require_previous {
                return Ok(Err(WriteConflict::PreviousMissing));
            }
            return Err(StoreError::corrupt("write would leave a gap in the stream"));
        }
        let mut position = state.global.len() as u64;
        let recorded: Vec<RecordedEvent> = events
            .iter()
            .zip(first..)
            .map(|(e, version)| {
                position += 1;
                RecordedEvent {
                    event_id: e.event_id,
                    stream_id: stream.clone(),
                    version,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    data: e.data.clone(),
                    metadata: e.metadata.clone(),
                    created_at,
                    global_position: Some(position),
                }
            })
            .collect();
        state.global.extend(recorded.iter().cloned());
        state
            .streams
            .entry(stream.clone())
            .or_default()
            .extend(recorded);
        Ok(Ok(()))
    }

    async fn event_ids(
        &self,
        stream: &StreamId,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Uuid)>, StoreError> {
        let state = self.lock()?;
        Ok(state
            .streams
            .get(stream)
            .into_iter()
            .flatten()
            .filter(|e| (from..=to).contains(&e.version))
            .map(|e| (e.version, e.event_id))
            .collect())
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        backward: bool,
        limit: usize,
        max_bytes: usize,
    ) -> Result<LogPage, StoreError> {
        let state = self.lock()?;
        let events = state.streams.get(stream).cloned().unwrap_or_default();
        let selected: Vec<RecordedEvent> = if backward {
            events
                .into_iter()
                .rev()
                .filter(|e| e.version <= from)
                .collect()
        } else {
            events.into_iter().filter(|e| e.version >= from).collect()
        };
        Ok(take_page(selected, limit, max_bytes))
    }

    async fn read_index(
        &self,
        filter: &GlobalFilter,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<IndexPage, StoreError> {
        // Every event has its position from the start, so the stretch ends at the limit or
        // at the end of the log, never at a hole.
        let state = self.lock()?;
        let mut events: Vec<RecordedEvent> = Vec::new();
        let mut bytes = 0;
        let mut next = from;
        for event in state.global.iter() {
            let position = event.global_position.unwrap_or(0);
            if position < from {
                continue;
            }
            if filter.matches(event) {
                if events.len() == limit
                    || (bytes + event.payload_bytes() > max_bytes && !events.is_empty())
                {
                    return Ok(IndexPage {
                        events,
                        next,
                        end: IndexEnd::Full,
                    });
                }
                bytes += event.payload_bytes();
                events.push(event.clone());
            }
            next = position + 1;
            if self
                .passing_at_most
                .is_some_and(|most| (next - from) as usize >= most)
            {
                return Ok(IndexPage {
                    events,
                    next,
                    end: IndexEnd::Full,
                });
            }
        }
        Ok(IndexPage {
            events,
            next,
            end: IndexEnd::End,
        })
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.global.len() as u64)
    }
}

impl SnapshotStore for InMemoryLog {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.lock()?.snapshots.get(stream).cloned())
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: &Snapshot,
    ) -> Result<SnapshotWrite, StoreError> {
        let mut state = self.lock()?;
        if let Some(stored) = state.snapshots.get(stream) {
            if stored.version > snapshot.version {
                return Ok(SnapshotWrite::Outdated {
                    stored_version: stored.version,
                });
            }
        }
        state.snapshots.insert(stream.clone(), snapshot.clone());
        Ok(SnapshotWrite::Stored)
    }
}
