//! The projection engine's specification, on the in-memory log and store: no DynamoDB, so
//! these run in milliseconds.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::port::{Commit, CommitLimits, Parked, ParkedEvent, ProjectionStore, Slot};
use super::step::{bounded, MAX_PARKED_ERROR_BYTES};
use super::*;
use crate::memory::{InMemoryLog, InMemoryProjections};
use crate::{AppendBatch, EventData, EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};

/// Counts events per stream category in one row per category; refuses `Poison` events.
struct Counting;

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
struct PerStream;

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
struct Sneaky;

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

async fn append(log: &InMemoryLog, stream: &str, types: &[&str]) {
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

fn engine<S: ProjectionStore>(
    log: &InMemoryLog,
    store: S,
    projections: Vec<Arc<dyn Projection>>,
) -> ProjectionEngine<InMemoryLog, S> {
    ProjectionEngine::new(log.clone(), store, projections)
}

async fn row(
    e: &ProjectionEngine<InMemoryLog, impl ProjectionStore>,
    name: &str,
    key: &str,
) -> Option<Value> {
    let (rows, _) = e.rows(name, key, None, 10).await.unwrap();
    rows.into_iter().next().map(|(_, v)| v)
}

#[tokio::test]
async fn a_catch_up_applies_each_event_once_in_order_and_a_second_changes_nothing() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened", "Ignored", "Deposited"]).await;
    append(&log, "Order-1", &["Placed"]).await;
    let e = engine(&log, InMemoryProjections::new(), vec![Arc::new(Counting)]);
    let report = e.catch_up(&Counting, None).await.unwrap();
    assert_eq!(
        report,
        ProjectReport {
            applied: 3,
            rows_written: 2,
            transactions: 1,
            parked: 0
        }
    );
    assert_eq!(row(&e, "counting", "Account").await, Some(json!(2)));
    assert_eq!(row(&e, "counting", "Order").await, Some(json!(1)));
    assert_eq!(e.checkpoint("counting").await.unwrap().position, 4);
    assert_eq!(
        e.catch_up(&Counting, None).await.unwrap(),
        ProjectReport::default()
    );
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_parked_after_three_attempts_and_the_rest_applied() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened", "Poison", "Deposited"]).await;
    let e = engine(&log, InMemoryProjections::new(), vec![Arc::new(Counting)]);
    for attempt in 1..POISON_ATTEMPTS {
        let err = e.catch_up(&Counting, None).await.unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "cannot apply event {} at position 2: poison (attempt {attempt} of 3)",
                log_event_id(&log, 2).await
            )),
            "{err}"
        );
        // The event before the poison one is applied once, whatever the retries.
        assert_eq!(row(&e, "counting", "Account").await, Some(json!(1)));
    }
    let report = e.catch_up(&Counting, None).await.unwrap();
    assert_eq!((report.applied, report.parked), (1, 1));
    assert_eq!(row(&e, "counting", "Account").await, Some(json!(2)));
    let checkpoint = e.checkpoint("counting").await.unwrap();
    assert_eq!(
        (checkpoint.position, checkpoint.parked, checkpoint.failures),
        (3, 1, 0)
    );
    assert_eq!(
        e.parked("counting").await.unwrap(),
        vec![Parked {
            position: 2,
            event_id: log_event_id(&log, 2).await,
            error: "poison".into()
        }]
    );
}

async fn log_event_id(log: &InMemoryLog, position: u64) -> String {
    let page = EventStore::new(log.clone())
        .read_global(&crate::GlobalFilter::All, Some(position), 1)
        .await
        .unwrap();
    page.events[0].event_id.to_string()
}

#[tokio::test]
async fn a_row_written_without_being_declared_is_refused_and_the_event_parked() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened"]).await;
    let e = engine(&log, InMemoryProjections::new(), vec![Arc::new(Sneaky)]);
    for _ in 1..POISON_ATTEMPTS {
        let err = e.catch_up(&Sneaky, None).await.unwrap_err();
        assert!(
            err.to_string().contains(
                "apply wrote row undeclared, which rows() did not declare for this event"
            ),
            "{err}"
        );
    }
    assert_eq!(e.catch_up(&Sneaky, None).await.unwrap().parked, 1);
    assert_eq!(row(&e, "sneaky", "undeclared").await, None);
}

#[tokio::test]
async fn steps_stop_at_the_rows_one_commit_can_hold() {
    let log = InMemoryLog::new();
    for i in 0..10 {
        append(&log, &format!("Account-{i}"), &["Opened"]).await;
    }
    let store = InMemoryProjections::new().with_limits(CommitLimits {
        rows: 4,
        ..InMemoryProjections::new().limits()
    });
    let e = engine(&log, store, vec![Arc::new(PerStream)]);
    let report = e.catch_up(&PerStream, None).await.unwrap();
    assert_eq!(
        (report.applied, report.rows_written, report.transactions),
        (10, 10, 3)
    );
}

#[tokio::test]
async fn steps_stop_at_the_bytes_one_commit_can_hold_and_an_oversized_row_is_parked() {
    let log = InMemoryLog::new();
    for i in 0..6 {
        append(&log, &format!("Account-{i}"), &["Opened"]).await;
    }
    // Each row is its key (9 bytes) and `1` (1 byte): two fit in 25 bytes.
    let limits = CommitLimits {
        bytes: 25,
        row_bytes: 9,
        ..InMemoryProjections::new().limits()
    };
    let e = engine(
        &log,
        InMemoryProjections::new().with_limits(CommitLimits {
            row_bytes: 100,
            ..limits
        }),
        vec![Arc::new(PerStream)],
    );
    let report = e.catch_up(&PerStream, None).await.unwrap();
    assert_eq!((report.applied, report.transactions), (6, 3));

    let e = engine(
        &log,
        InMemoryProjections::new().with_limits(limits),
        vec![Arc::new(PerStream)],
    );
    let err = e.catch_up(&PerStream, None).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "row Account-0 would be 10 bytes, over the in-memory store's 400 KB row limit"
        ),
        "{err}"
    );
}

/// A store that refuses commits of more than `max_changes` rows, as DynamoDB refuses a
/// transaction over its real size, and loses the first `lose` commits to a racing writer.
#[derive(Clone)]
struct Refusing {
    inner: InMemoryProjections,
    max_changes: usize,
    lose: Arc<AtomicUsize>,
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

#[tokio::test]
async fn a_refused_commit_is_retried_with_fewer_events_and_a_lost_one_re_read() {
    let log = InMemoryLog::new();
    for i in 0..8 {
        append(&log, &format!("Account-{i}"), &["Opened"]).await;
    }
    let store = Refusing {
        inner: InMemoryProjections::new(),
        max_changes: 3,
        lose: Arc::new(AtomicUsize::new(2)),
    };
    let e = engine(&log, store.clone(), vec![Arc::new(PerStream)]);
    let report = e.catch_up(&PerStream, None).await.unwrap();
    // Lost twice; 8 and 4 events refused, 2 committed; back to a full page: 6 refused,
    // 3 committed; the last 3 committed.
    assert_eq!((report.applied, report.transactions), (8, 3));
    for i in 0..8 {
        assert_eq!(
            row(&e, "per-stream", &format!("Account-{i}")).await,
            Some(json!(1))
        );
    }

    // One event whose own rows are refused fails like an event apply refuses.
    let one = Refusing {
        inner: InMemoryProjections::new(),
        max_changes: 0,
        lose: Arc::new(AtomicUsize::new(0)),
    };
    let e = engine(&log, one, vec![Arc::new(PerStream)]);
    let err = e.catch_up(&PerStream, None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the in-memory store refused the transaction writing its rows: too large"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rebuild_fills_a_new_generation_and_switches_readers_to_it() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened", "Deposited"]).await;
    let store = InMemoryProjections::new();
    let e = engine(&log, store.clone(), vec![Arc::new(Counting)]);
    e.catch_up(&Counting, None).await.unwrap();
    append(&log, "Account-2", &["Opened"]).await;
    let mut seen = Vec::new();
    let live = e
        .rebuild(&Counting, |position, head| seen.push((position, head)))
        .await
        .unwrap();
    assert_eq!((live.generation, live.position), (2, 3));
    assert_eq!(seen, vec![(0, 3), (3, 3)]);
    assert_eq!(row(&e, "counting", "Account").await, Some(json!(3)));
    // The old generation is left as it was, and a re-run starts generation 3.
    assert_eq!(
        store
            .rows("counting", 1, "Account", None, 1)
            .await
            .unwrap()
            .0,
        vec![(String::new(), json!(2))]
    );
    assert_eq!(e.rebuild(&Counting, |_, _| {}).await.unwrap().generation, 3);
}

#[tokio::test]
async fn a_pass_over_every_projection_leaves_them_behind_when_out_of_time() {
    let log = InMemoryLog::new();
    for i in 0..150 {
        append(&log, &format!("Account-{i}"), &["Opened"]).await;
    }
    let e = engine(
        &log,
        InMemoryProjections::new(),
        vec![Arc::new(Counting), Arc::new(PerStream)],
    )
    .with_invocation_budget(Duration::ZERO);
    let pass = e.catch_up_all(None).await.unwrap();
    // One round: a step of each (100 events), then out of time.
    assert_eq!(pass.target, 150);
    assert_eq!(pass.behind, vec!["counting", "per-stream"]);
    assert_eq!(e.checkpoint("counting").await.unwrap().position, 100);
    let e = e.with_invocation_budget(Duration::from_secs(60));
    let pass = e.catch_up_all(None).await.unwrap();
    assert!(pass.behind.is_empty() && pass.failed.is_empty());
    assert_eq!(e.checkpoint("per-stream").await.unwrap().position, 150);
}

/// Refuses `Poison` events until fixed, then counts them like the rest.
struct Fixable(std::sync::atomic::AtomicBool);

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

#[tokio::test]
async fn a_parked_event_is_replayed_after_a_fix_once_and_leaves_the_parked_list() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened", "Poison", "Deposited"]).await;
    let fixable = Arc::new(Fixable(std::sync::atomic::AtomicBool::new(false)));
    let e = engine(&log, InMemoryProjections::new(), vec![fixable.clone()]);
    for _ in 1..POISON_ATTEMPTS {
        e.catch_up(fixable.as_ref(), None).await.unwrap_err();
    }
    assert_eq!(e.catch_up(fixable.as_ref(), None).await.unwrap().parked, 1);
    assert_eq!(row(&e, "fixable", "Account").await, Some(json!(2)));

    // Not fixed yet: it stays parked, with its error.
    let still = e.replay_parked(fixable.as_ref(), None).await.unwrap();
    assert_eq!(still.applied, Vec::<u64>::new());
    assert_eq!(still.failed, vec![(2, "not yet".to_owned())]);
    assert_eq!(e.checkpoint("fixable").await.unwrap().parked, 1);

    fixable.0.store(true, Ordering::SeqCst);
    // Only the position asked for: another position replays nothing.
    assert_eq!(
        e.replay_parked(fixable.as_ref(), Some(3)).await.unwrap(),
        super::Replayed::default()
    );
    let replayed = e.replay_parked(fixable.as_ref(), Some(2)).await.unwrap();
    assert_eq!((replayed.applied, replayed.failed), (vec![2], vec![]));
    assert_eq!(row(&e, "fixable", "Account").await, Some(json!(3)));
    let checkpoint = e.checkpoint("fixable").await.unwrap();
    assert_eq!((checkpoint.position, checkpoint.parked), (3, 0));
    assert_eq!(e.parked("fixable").await.unwrap(), vec![]);
    // Replayed once: a second replay finds nothing.
    assert_eq!(
        e.replay_parked(fixable.as_ref(), None).await.unwrap(),
        super::Replayed::default()
    );
    assert_eq!(row(&e, "fixable", "Account").await, Some(json!(3)));
}

#[test]
fn a_parked_error_is_cut_to_its_limit_at_a_character_boundary() {
    assert_eq!(bounded("short"), "short");
    let long = "é".repeat(MAX_PARKED_ERROR_BYTES);
    let cut = bounded(&long);
    // "é" is two bytes: the limit falls between characters or on one's end.
    assert_eq!(cut.len(), MAX_PARKED_ERROR_BYTES);
    let odd = format!("x{long}");
    assert_eq!(bounded(&odd).len(), MAX_PARKED_ERROR_BYTES - 1);
}
