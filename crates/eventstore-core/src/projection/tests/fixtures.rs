//! The projections and stores the engine's specification runs: projections that count,
//! refuse, or write what they did not declare, and a store that refuses or loses commits.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::memory::{InMemoryLog, InMemoryProjections};
use crate::projection::port::{Commit, CommitLimits, Parked, ParkedEvent, ProjectionStore, Slot};
use crate::projection::{Checkpoint, Projection, ProjectionEngine, RowId, Rows};
use crate::{
    AppendBatch, EventData, EventStore, EventType, ExpectedVersion, NewEvent, RecordedEvent,
    StoreError, StreamId,
};

/// Counts events per stream category in one row per category; refuses `Poison` events.
pub(super) struct Counting;

impl Projection for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    fn handles(&self, event_type: &EventType) -> bool {
        event_type.as_str() != "Ignored"
    }

    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        vec![RowId::single(event.stream_id.category().as_str())]
    }

    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        if event.event_type.as_str() == "Poison" {
            return Err("poison".into());
        }
        let row = RowId::single(event.stream_id.category().as_str());
        let count = rows.get(&row).and_then(Value::as_u64).unwrap_or(0);
        rows.put(row, json!(count + 1));
        Ok(())
    }
}

/// One row per stream: a projection whose events touch many distinct rows.
pub(super) struct PerStream;

impl Projection for PerStream {
    fn name(&self) -> &str {
        "per-stream"
    }

    fn handles(&self, _: &EventType) -> bool {
        true
    }

    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        vec![RowId::single(event.stream_id.as_str())]
    }

    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        rows.put(
            RowId::single(event.stream_id.as_str()),
            json!(event.version),
        );
        Ok(())
    }
}

/// Writes a row it did not declare.
pub(super) struct Sneaky;

impl Projection for Sneaky {
    fn name(&self) -> &str {
        "sneaky"
    }

    fn handles(&self, _: &EventType) -> bool {
        true
    }

    fn rows(&self, _: &RecordedEvent) -> Vec<RowId> {
        vec![RowId::single("declared")]
    }

    fn apply(&self, _: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        rows.put(RowId::single("undeclared"), json!(1));
        Ok(())
    }
}

pub(super) async fn append(log: &InMemoryLog, stream: &str, types: &[&str]) {
    let events = types
        .iter()
        .map(|t| {
            NewEvent::new(
                EventType::parse(t, "eventType").unwrap(),
                EventData::from_json("{}".into(), "data").unwrap(),
            )
        })
        .collect();
    EventStore::new(log.clone())
        .append(
            &StreamId::parse(stream, "streamId").unwrap(),
            ExpectedVersion::Any,
            &AppendBatch::new(events).unwrap(),
        )
        .await
        .unwrap();
}

pub(super) fn engine<S: ProjectionStore>(
    log: &InMemoryLog,
    store: S,
    projections: Vec<Arc<dyn Projection>>,
) -> ProjectionEngine<InMemoryLog, S> {
    ProjectionEngine::new(log.clone(), store, projections)
}

pub(super) async fn row(
    e: &ProjectionEngine<InMemoryLog, impl ProjectionStore>,
    name: &str,
    key: &str,
) -> Option<Value> {
    let (rows, _) = e.rows(name, key, None, 10).await.unwrap();
    rows.into_iter().next().map(|(_, v)| v)
}

pub(super) async fn log_event_id(log: &InMemoryLog, position: u64) -> String {
    let page = EventStore::new(log.clone())
        .read_global(&crate::GlobalFilter::All, Some(position), 1)
        .await
        .unwrap();
    page.events[0].event_id.to_string()
}

/// A store that refuses commits of more than `max_changes` rows, as DynamoDB refuses a
/// transaction over its real size, and loses the first `lose` commits to a racing writer.
#[derive(Clone)]
pub(super) struct Refusing {
    pub(super) inner: InMemoryProjections,
    pub(super) max_changes: usize,
    pub(super) lose: Arc<AtomicUsize>,
}

impl ProjectionStore for Refusing {
    fn limits(&self) -> CommitLimits {
        self.inner.limits()
    }
    fn row_size(&self, n: &str, g: u64, r: &RowId, v: Option<&Value>) -> Result<usize, StoreError> {
        self.inner.row_size(n, g, r, v)
    }
    async fn checkpoint(&self, slot: &Slot) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(slot).await
    }
    async fn load_rows(&self, n: &str, g: u64, r: &BTreeSet<RowId>) -> Result<Rows, StoreError> {
        self.inner.load_rows(n, g, r).await
    }
    async fn commit(
        &self,
        slot: &Slot,
        read: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> Result<Commit, StoreError> {
        if self
            .lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Ok(Commit::Lost);
        }
        if changes.len() > self.max_changes {
            return Ok(Commit::Refused("too large".into()));
        }
        self.inner.commit(slot, read, position, changes).await
    }
    async fn count_failure(&self, slot: &Slot, read: Checkpoint) -> Result<bool, StoreError> {
        self.inner.count_failure(slot, read).await
    }
    async fn park(
        &self,
        slot: &Slot,
        read: Checkpoint,
        e: &ParkedEvent,
    ) -> Result<bool, StoreError> {
        self.inner.park(slot, read, e).await
    }
    async fn start_rebuild(
        &self,
        n: &str,
        l: Checkpoint,
        s: Option<u64>,
    ) -> Result<bool, StoreError> {
        self.inner.start_rebuild(n, l, s).await
    }
    async fn switch(&self, n: &str, l: Checkpoint, r: Checkpoint) -> Result<bool, StoreError> {
        self.inner.switch(n, l, r).await
    }
    async fn unpark(
        &self,
        n: &str,
        l: Checkpoint,
        p: u64,
        c: &[(RowId, Option<Value>)],
    ) -> Result<bool, StoreError> {
        self.inner.unpark(n, l, p, c).await
    }
    async fn parked(&self, n: &str, g: u64) -> Result<Vec<Parked>, StoreError> {
        self.inner.parked(n, g).await
    }
    async fn rows(
        &self,
        n: &str,
        g: u64,
        k: &str,
        a: Option<&str>,
        l: usize,
    ) -> Result<(Vec<(String, Value)>, Option<String>), StoreError> {
        self.inner.rows(n, g, k, a, l).await
    }
}

/// Refuses `Poison` events until fixed, then counts them like the rest.
pub(super) struct Fixable(pub(super) std::sync::atomic::AtomicBool);

impl Projection for Fixable {
    fn name(&self) -> &str {
        "fixable"
    }
    fn handles(&self, _: &EventType) -> bool {
        true
    }
    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        Counting.rows(event)
    }
    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        if event.event_type.as_str() == "Poison" && !self.0.load(Ordering::SeqCst) {
            return Err("not yet".into());
        }
        let row = RowId::single(event.stream_id.category().as_str());
        let count = rows.get(&row).and_then(Value::as_u64).unwrap_or(0);
        rows.put(row, json!(count + 1));
        Ok(())
    }
}
