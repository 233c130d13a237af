//! The projector: keeps projections (read models) up to date from the global order, each
//! event exactly once and in order.
//!
//! It is triggered by the stream records of the sequencer's counter item (`COUNTER#ALL`),
//! a single item, so its records come in order, each saying "the log now reaches position
//! P". For each projection it then repeats, until its checkpoint reaches P:
//!
//! 1. read the checkpoint (consistent) from the checkpoints table;
//! 2. read `$all` after it, gap-aware (a page never skips a position);
//! 3. read the rows the page's events touch (consistent `BatchGetItem`), apply the events in
//!    order in memory, upcast first;
//! 4. write every changed row once, and the checkpoint, in one `TransactWriteItems`
//!    conditioned on the checkpoint read in step 1.
//!
//! A crash before step 4 writes nothing; a crash after it leaves rows and checkpoint
//! consistent; a second projector racing on the same projection fails its condition and
//! re-reads. So redelivered or duplicated triggers change nothing twice.
//!
//! An event a projection cannot apply is retried on the next triggers; after
//! [`POISON_ATTEMPTS`] failures it is parked (recorded in the checkpoints table with its
//! error) and the checkpoint moves past it.
//!
//! An invocation gives every projection one step per round, so none waits for another far
//! behind, and stops starting rounds when its time budget is spent. A projection left
//! behind then, or by a lagging index, does not fail the batch: a schedule (a timer
//! locally) invokes the projector every minute to bring all projections to the head.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use eventstore_core::{
    Checkpoint, EventLog, EventStore, GlobalFilter, Projection, RecordedEvent, RowId, Rows,
    StoreError, Upcasters,
};
use serde_json::Value;

use crate::error::{
    cancellation_codes, classify_cancellation, from_sdk, from_transaction, Cancellation,
};
use crate::event_source::{retry_batch, run_locally, LocalEventSource};
use crate::keys;
use crate::log::{
    batch_get_consistent, conflict_backoff, get_consistent, transact_conditionally, DynamoEventLog,
};
use crate::metrics::{self, Metrics};

/// Failed attempts at one event before it is parked.
pub const POISON_ATTEMPTS: u32 = 3;
/// Attempts of a throttled step commit before the step gives up for now.
const TRANSACTION_ATTEMPTS: u32 = 5;
/// How long an invocation starts new rounds of steps: half the function's 120 s timeout.
const INVOCATION_BUDGET: Duration = Duration::from_secs(60);
/// How often the local projector runs the scheduled catch-up (a minute on AWS).
const LOCAL_CATCH_UP_EVERY: Duration = Duration::from_secs(5);
/// Short waits for a lagging global index before a direct catch-up gives up.
const LAG_WAITS: u32 = 3;
/// How long an invocation waits for a lagging global index before it leaves the
/// projection behind for the next trigger.
const LAG_PATIENCE: Duration = Duration::from_secs(1);
/// Events read from `$all` per step.
const EVENTS_PER_STEP: usize = 100;
/// Rows one transaction can write beside the checkpoint (DynamoDB's 100 actions).
const ROWS_PER_STEP: usize = 99;
/// Bytes of rows one step writes, kept well under DynamoDB's 4 MB per transaction (as the
/// sequencer does). A single event's rows may take more: DynamoDB then decides.
const MAX_TRANSACTION_BYTES: usize = 3 * 1024 * 1024;
/// DynamoDB's limit on one item, attribute names included.
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The Lambda event filter of the projector's event source: the counter item's records.
/// `infra/template.yaml` declares the same pattern.
pub const COUNTER_FILTER: &str =
    r#"{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"PK":{"S":["COUNTER#ALL"]}}}}"#;

/// The tables the projector writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionTables {
    /// Rows of every projection: `PK = <name>#<generation>#<key>`, `SK = <item>` (`-` for a
    /// projection's single row per key).
    pub rows: String,
    /// `PROJECTION#<name>` / `CHECKPOINT` per projection; parked events under
    /// `PARKED#<name>#<generation>` / `<20-digit position>`.
    pub checkpoints: String,
}

/// What a catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProjectReport {
    /// Events the projection handled and applied.
    pub applied: u64,
    /// Row writes (puts or deletes), each changed row once per transaction.
    pub rows_written: u64,
    pub transactions: u64,
    pub parked: u64,
}

/// What one invocation did for every projection.
#[derive(Debug, Default)]
pub struct Pass {
    /// The position the projections were brought towards.
    pub target: u64,
    /// Per projection, what its catch-up did.
    pub reports: Vec<(String, ProjectReport)>,
    /// Projections left short of the target: out of time, or the index lags. The next
    /// trigger (at the latest the scheduled catch-up) goes on from their checkpoints.
    pub behind: Vec<String>,
    /// Projections that failed, with their errors.
    pub failed: Vec<(String, StoreError)>,
}

/// A pass's metrics, one EMF line per projection.
fn emit_pass_metrics(pass: &Pass) {
    for (name, report) in &pass.reports {
        let mut m = Metrics::new().dimension("Projection", name.as_str());
        m.put(&metrics::EVENTS_APPLIED, report.applied as f64)
            .put(&metrics::EVENTS_PARKED, report.parked as f64);
        m.emit();
    }
    for (name, _) in &pass.failed {
        let mut m = Metrics::new().dimension("Projection", name.as_str());
        m.put(&metrics::PROJECTION_FAILURES, 1.0);
        m.emit();
    }
}

/// A parked event, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub position: u64,
    pub event_id: String,
    pub error: String,
}

/// Runs projections against one events table.
#[derive(Clone)]
pub struct Projector {
    store: EventStore<DynamoEventLog>,
    client: Client,
    tables: ProjectionTables,
    projections: Vec<Arc<dyn Projection>>,
    upcasters: Upcasters,
    invocation_budget: Duration,
    local_catch_up_every: Duration,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        f.debug_struct("Projector")
            .field("tables", &self.tables)
            .field("projections", &names)
            .finish()
    }
}

const ROW_VALUE: &str = "value";
const CHECKPOINT_SK: &str = "CHECKPOINT";
const POSITION: &str = "position";
const GENERATION: &str = "generation";
const PARKED: &str = "parked";
const FAILURES: &str = "failures";
/// The token of the last failed attempt counted (see `count_failure`).
const FAILED_ATTEMPT: &str = "failedAttempt";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Parked events are kept per generation: a rebuild parks in its own, and readers see
/// those of the live generation only.
fn parked_pk(name: &str, generation: u64) -> String {
    format!("PARKED#{name}#{generation}")
}

/// Where versions before generations had parked lists kept them. Only generation 1 can
/// have parked there (a rebuild's parked events were mixed in), so it is read for
/// generation 1 only.
fn legacy_parked_pk(name: &str) -> String {
    format!("PARKED#{name}")
}

/// The checkpoint item of a rebuild in progress, beside the live `PROJECTION#<name>`.
fn rebuild_pk(name: &str) -> String {
    format!("{}{REBUILD_SUFFIX}", checkpoint_pk(name))
}

const REBUILD_SUFFIX: &str = "#REBUILD";

/// Whether a checkpoint item is a rebuild's (projection names are `[a-z0-9-]`, so no live
/// checkpoint ends so).
fn is_rebuild(pk: &str) -> bool {
    pk.ends_with(REBUILD_SUFFIX)
}

fn checkpoint_pk(name: &str) -> String {
    format!("PROJECTION#{name}")
}

fn row_key(name: &str, generation: u64, row: &RowId) -> (String, String) {
    let item = if row.item.is_empty() {
        "-"
    } else {
        row.item.as_str()
    };
    (format!("{name}#{generation}#{}", row.key), item.to_owned())
}

/// Longest error text a parked entry keeps: a projection's error of any length must not
/// make the parked item too large to write, which would leave the event stuck.
const MAX_PARKED_ERROR_BYTES: usize = 4096;

/// `message`, cut to [`MAX_PARKED_ERROR_BYTES`] at a character boundary.
fn bounded(message: &str) -> &str {
    let mut end = message.len().min(MAX_PARKED_ERROR_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A row as operators name it: `key`, or `key/item`.
fn describe(row: &RowId) -> String {
    if row.item.is_empty() {
        row.key.clone()
    } else {
        format!("{}/{}", row.key, row.item)
    }
}

/// The reason DynamoDB refused a transaction as too large, if it did: a
/// `ValidationException` about a size or a length (too many bytes, too many actions), or a
/// cancellation with a `ValidationError` reason (an item over 400 KB). Other validation
/// errors are the projector's own faults and no reason to park an event.
fn size_refusal(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> Option<String> {
    let SdkError::ServiceError(se) = err else {
        return None;
    };
    match se.err() {
        TransactWriteItemsError::TransactionCanceledException(c) => c
            .cancellation_reasons()
            .iter()
            .find(|r| r.code() == Some("ValidationError"))
            .map(|r| format!("ValidationError: {}", r.message().unwrap_or("no message"))),
        other if other.code() == Some("ValidationException") => {
            let message = other.message().unwrap_or("no message");
            let lower = message.to_ascii_lowercase();
            (lower.contains("size") || lower.contains("length"))
                .then(|| format!("ValidationException: {message}"))
        }
        _ => None,
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Projector {
    pub fn new(
        log: DynamoEventLog,
        tables: ProjectionTables,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Self {
        Self {
            client: log.client.clone(),
            store: EventStore::new(log),
            tables,
            projections,
            upcasters: Upcasters::new(),
            invocation_budget: INVOCATION_BUDGET,
            local_catch_up_every: LOCAL_CATCH_UP_EVERY,
        }
    }

    /// How long an invocation starts new rounds of steps (default: a minute, half the
    /// function's timeout, so the last round ends well within it).
    pub fn with_invocation_budget(mut self, budget: Duration) -> Self {
        self.invocation_budget = budget;
        self
    }

    /// How often [`Projector::run_locally`] runs the scheduled catch-up (default 5 s).
    pub fn with_local_catch_up_every(mut self, every: Duration) -> Self {
        self.local_catch_up_every = every;
        self
    }

    /// Events are upcast before projections see them.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    pub fn projection(&self, name: &str) -> Option<&Arc<dyn Projection>> {
        self.projections.iter().find(|p| p.name() == name)
    }

    pub fn projections(&self) -> &[Arc<dyn Projection>] {
        &self.projections
    }

    /// The projection's checkpoint, read consistently (position 0, generation 1 before its
    /// first write).
    pub async fn checkpoint(&self, name: &str) -> Result<Checkpoint, StoreError> {
        Ok(self
            .checkpoint_at(&checkpoint_pk(name))
            .await?
            .unwrap_or(Checkpoint {
                generation: 1,
                ..Checkpoint::default()
            }))
    }

    /// The checkpoint item `pk`, `None` if it does not exist.
    async fn checkpoint_at(&self, pk: &str) -> Result<Option<Checkpoint>, StoreError> {
        let item =
            get_consistent(&self.client, &self.tables.checkpoints, pk, CHECKPOINT_SK).await?;
        Ok(item.map(|item| Checkpoint {
            position: number(&item, POSITION),
            generation: number(&item, GENERATION).max(1),
            parked: number(&item, PARKED),
            failures: u32::try_from(number(&item, FAILURES)).unwrap_or(u32::MAX),
        }))
    }

    /// The last global position handed out: how far projections can go.
    pub async fn head(&self) -> Result<u64, StoreError> {
        self.store.log().last_position().await
    }

    /// Brings one projection up to `up_to` (default: the head), step by step.
    pub async fn catch_up(
        &self,
        projection: &dyn Projection,
        up_to: Option<u64>,
    ) -> Result<ProjectReport, StoreError> {
        self.catch_up_at(projection, &checkpoint_pk(projection.name()), up_to)
            .await
    }

    /// `catch_up` for the checkpoint item `pk` (the live one, or a rebuild's). An index
    /// that keeps lagging after a few short waits is `Unavailable`.
    async fn catch_up_at(
        &self,
        projection: &dyn Projection,
        pk: &str,
        up_to: Option<u64>,
    ) -> Result<ProjectReport, StoreError> {
        let target = match up_to {
            Some(p) => p,
            None => self.head().await?,
        };
        let mut tracker = Tracker::new(projection, pk.to_owned(), target);
        loop {
            match self.advance(&mut tracker).await? {
                Advance::AtTarget => return Ok(tracker.report),
                Advance::Moved => {}
                Advance::Lagging(position) => {
                    if tracker.lag_waits >= LAG_WAITS {
                        return Err(index_lagging(position));
                    }
                    tokio::time::sleep(lag_backoff(tracker.lag_waits)).await;
                    tracker.lag_waits += 1;
                }
            }
        }
    }

    /// One step of a catch-up: reads the checkpoint, then a page of `$all` after it, and
    /// applies and commits it.
    async fn advance(&self, tracker: &mut Tracker<'_>) -> Result<Advance, StoreError> {
        let checkpoint = match self.checkpoint_at(&tracker.pk).await? {
            Some(checkpoint) => checkpoint,
            // A rebuild's checkpoint exists from its start until its switch: gone, the
            // rebuild is over (`rebuild` finds out how), and there is nothing to do.
            None if is_rebuild(&tracker.pk) => return Ok(Advance::AtTarget),
            None => Checkpoint {
                generation: 1,
                ..Checkpoint::default()
            },
        };
        if checkpoint.position >= tracker.target {
            return Ok(Advance::AtTarget);
        }
        let page = self
            .store
            .read_global(
                &GlobalFilter::All,
                Some(checkpoint.position + 1),
                tracker.limit,
            )
            .await?;
        if page.events.is_empty() {
            return Ok(Advance::Lagging(checkpoint.position + 1));
        }
        tracker.lag_waits = 0;
        tracker.lagging_since = None;
        let pk = tracker.pk.clone();
        match self
            .step(
                tracker.projection,
                &pk,
                checkpoint,
                page.events,
                &mut tracker.report,
            )
            .await?
        {
            Step::Done => {
                tracker.lost_races = 0;
                tracker.limit = EVENTS_PER_STEP;
            }
            Step::Shrink(events) => tracker.limit = events,
            Step::Lost => {
                tracker.lost_races += 1;
                if tracker.lost_races > 20 {
                    return Err(StoreError::Unavailable {
                        message: "another projector keeps moving the checkpoint".into(),
                        source: None,
                    });
                }
            }
            Step::Failed(err) => return Err(err),
        }
        Ok(Advance::Moved)
    }

    /// Brings every projection towards `up_to` (default: the head) in rounds, one step of
    /// each unfinished projection per round, so that one far behind (a new projection) does
    /// not keep the others waiting. Stops after the round in which the invocation budget
    /// ran out; a projection still short of the target then, or whose index read keeps
    /// lagging, is left behind for the next trigger (its checkpoint says where it is).
    pub async fn catch_up_all(&self, up_to: Option<u64>) -> Result<Pass, StoreError> {
        let started = Instant::now();
        let target = match up_to {
            Some(p) => p,
            None => self.head().await?,
        };
        let mut trackers: Vec<Tracker<'_>> = self
            .projections
            .iter()
            .map(|p| Tracker::new(p.as_ref(), checkpoint_pk(p.name()), target))
            .collect();
        let mut pass = Pass {
            target,
            ..Pass::default()
        };
        let mut active: Vec<usize> = (0..trackers.len()).collect();
        while !active.is_empty() {
            let mut moved = false;
            let mut still = Vec::with_capacity(active.len());
            for i in active {
                let tracker = &mut trackers[i];
                // Boxed: the nested step futures are otherwise too deep for the compiler to
                // lay out inside the Lambda runtime's service future.
                match Box::pin(self.advance(tracker)).await {
                    Ok(Advance::AtTarget) => {}
                    Ok(Advance::Moved) => {
                        moved = true;
                        still.push(i);
                    }
                    Ok(Advance::Lagging(position)) => {
                        let since = *tracker.lagging_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < LAG_PATIENCE {
                            still.push(i);
                        } else {
                            tracing::warn!(
                                projection = tracker.projection.name(),
                                position,
                                "the global index lags; left for the next trigger"
                            );
                            pass.behind.push(tracker.projection.name().to_owned());
                        }
                    }
                    Err(err) => {
                        tracing::error!(projection = tracker.projection.name(), error = %err,
                            "projection failed");
                        pass.failed
                            .push((tracker.projection.name().to_owned(), err));
                    }
                }
            }
            active = still;
            if started.elapsed() >= self.invocation_budget {
                for &i in &active {
                    pass.behind.push(trackers[i].projection.name().to_owned());
                }
                break;
            }
            if !moved && !active.is_empty() {
                // Every projection left waits for the index.
                tokio::time::sleep(lag_backoff(1)).await;
            }
        }
        for tracker in trackers {
            tracing::info!(
                projection = tracker.projection.name(),
                target,
                applied = tracker.report.applied,
                rows = tracker.report.rows_written,
                parked = tracker.report.parked,
                "projected"
            );
            pass.reports
                .push((tracker.projection.name().to_owned(), tracker.report));
        }
        if !pass.behind.is_empty() {
            tracing::info!(behind = ?pass.behind, target,
                "projections left behind; the scheduled catch-up continues");
        }
        Ok(pass)
    }

    async fn step(
        &self,
        projection: &dyn Projection,
        pk: &str,
        checkpoint: Checkpoint,
        events: Vec<RecordedEvent>,
        report: &mut ProjectReport,
    ) -> Result<Step, StoreError> {
        // The longest prefix whose rows fit one transaction, each event with the rows it
        // declares (`None` for an event the projection does not handle).
        let mut needed: BTreeSet<RowId> = BTreeSet::new();
        let mut batch: Vec<(RecordedEvent, Option<BTreeSet<RowId>>)> = Vec::new();
        // An event that cannot be applied whatever the batch: its upcasting fails, or it
        // declares more rows than a transaction can write.
        let mut unusable: Option<(usize, String)> = None;
        for event in events {
            if !projection.handles(&event.event_type) {
                batch.push((event, None));
                continue;
            }
            let event = match self.upcasters.upcast(event.clone()) {
                Ok(upcast) => upcast,
                Err(err) => {
                    unusable = Some((batch.len(), err.to_string()));
                    batch.push((event, Some(BTreeSet::new())));
                    break;
                }
            };
            let own: BTreeSet<RowId> = projection.rows(&event).into_iter().collect();
            if own.len() > ROWS_PER_STEP {
                unusable = Some((
                    batch.len(),
                    format!(
                        "the event declares {} rows, more than the {ROWS_PER_STEP} one transaction can write",
                        own.len()
                    ),
                ));
                batch.push((event, Some(BTreeSet::new())));
                break;
            }
            let new = own.iter().filter(|r| !needed.contains(*r)).count();
            if needed.len() + new > ROWS_PER_STEP {
                break;
            }
            needed.extend(own.iter().cloned());
            batch.push((event, Some(own)));
        }
        let mut rows = self
            .load_rows(projection.name(), checkpoint.generation, &needed)
            .await?;
        let mut position = checkpoint.position;
        let mut applied = 0;
        let mut failure = None;
        // The estimated size of each row the step writes, and their sum.
        let mut sizes: HashMap<RowId, usize> = HashMap::new();
        let mut bytes = 0usize;
        // Events up to `position`, and the last of them that wrote rows.
        let mut included = 0;
        let mut last_writer = None;
        for (i, (event, own)) in batch.iter().enumerate() {
            let at = event
                .global_position
                .ok_or_else(|| StoreError::corrupt("an event of $all without a position"))?;
            if let Some(own) = own {
                if let Some((_, message)) = unusable.as_ref().filter(|(at, _)| *at == i) {
                    failure = Some((event, message.clone()));
                    break;
                }
                // The event sees only the rows it declared, so what it reads does not depend
                // on which other events share its batch, and a failed event leaves `rows`
                // untouched.
                let mut scoped =
                    Rows::loaded(own.iter().map(|r| (r.clone(), rows.get(r).cloned())));
                if let Err(message) = projection.apply(event, &mut scoped) {
                    failure = Some((event, message));
                    break;
                }
                let changes = scoped.changes();
                // A row `rows()` did not declare was never loaded: writing it would replace
                // the stored value with one computed from nothing.
                if let Some((row, _)) = changes.iter().find(|(row, _)| !own.contains(row)) {
                    failure = Some((
                        event,
                        format!(
                            "apply wrote row {}, which rows() did not declare for this event",
                            describe(row)
                        ),
                    ));
                    break;
                }
                let mut grown = bytes;
                let mut new_sizes = Vec::with_capacity(changes.len());
                for (row, value) in &changes {
                    let size = self.row_bytes(
                        projection.name(),
                        checkpoint.generation,
                        row,
                        value.as_ref(),
                    )?;
                    grown = grown.saturating_sub(sizes.get(row).copied().unwrap_or(0)) + size;
                    new_sizes.push((row.clone(), size));
                }
                if let Some((row, size)) = new_sizes.iter().find(|(_, size)| *size > MAX_ITEM_BYTES)
                {
                    failure = Some((
                        event,
                        format!(
                            "row {} would be {size} bytes, over DynamoDB's 400 KB item limit",
                            describe(row)
                        ),
                    ));
                    break;
                }
                // Over budget with rows of earlier events: they go first, this event
                // starts the next step.
                if grown > MAX_TRANSACTION_BYTES && !sizes.is_empty() {
                    break;
                }
                bytes = grown;
                sizes.extend(new_sizes);
                for (row, value) in changes {
                    match value {
                        Some(value) => rows.put(row, value),
                        None => rows.delete(row),
                    }
                }
                applied += 1;
                last_writer = Some(event);
            }
            position = at;
            included = i + 1;
        }
        if position > checkpoint.position {
            let changes = rows.changes();
            match self
                .commit(projection.name(), pk, checkpoint, position, &changes)
                .await?
            {
                Commit::Done => {}
                Commit::Lost => return Ok(Step::Lost),
                // Larger than DynamoDB takes, though within the estimate: fewer events.
                Commit::Refused(_) if included > 1 => return Ok(Step::Shrink(included / 2)),
                // The one event's own rows cannot be written: it fails like an event
                // `apply` refuses.
                Commit::Refused(reason) => {
                    let Some(event) = last_writer else {
                        return Err(StoreError::corrupt(format!(
                            "DynamoDB refused a checkpoint write of {}: {reason}",
                            projection.name()
                        )));
                    };
                    let message =
                        format!("DynamoDB refused the transaction writing its rows: {reason}");
                    return self
                        .fail(
                            projection,
                            pk,
                            checkpoint,
                            checkpoint.position,
                            event,
                            message,
                            report,
                        )
                        .await;
                }
            }
            report.applied += applied;
            report.rows_written += changes.len() as u64;
            report.transactions += 1;
            if failure.is_none() {
                return Ok(Step::Done);
            }
        }
        let Some((event, message)) = failure else {
            return Ok(Step::Done);
        };
        self.fail(projection, pk, checkpoint, position, event, message, report)
            .await
    }

    /// Records that the event after `position` failed: counts the attempt, or parks the
    /// event after [`POISON_ATTEMPTS`]. `checkpoint` is as read before the step, `position`
    /// where the step's commit (if any) left it.
    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &self,
        projection: &dyn Projection,
        pk: &str,
        checkpoint: Checkpoint,
        position: u64,
        event: &RecordedEvent,
        message: String,
        report: &mut ProjectReport,
    ) -> Result<Step, StoreError> {
        // The event after `position` fails. The checkpoint now stands right before it.
        let current = Checkpoint {
            position,
            failures: if position > checkpoint.position {
                0
            } else {
                checkpoint.failures
            },
            ..checkpoint
        };
        tracing::warn!(projection = projection.name(), event = %event.event_id,
            attempt = current.failures + 1, error = %message, "projection failed on an event");
        if current.failures + 1 >= POISON_ATTEMPTS {
            if self
                .park(projection.name(), pk, current, event, &message)
                .await?
            {
                report.parked += 1;
                return Ok(Step::Done);
            }
            return Ok(Step::Lost);
        }
        if !self.count_failure(pk, current).await? {
            return Ok(Step::Lost);
        }
        Ok(Step::Failed(StoreError::corrupt(format!(
            "projection {} cannot apply event {} at position {}: {message} (attempt {} of {POISON_ATTEMPTS})",
            projection.name(),
            event.event_id,
            event.global_position.unwrap_or(0),
            current.failures + 1
        ))))
    }

    async fn load_rows(
        &self,
        name: &str,
        generation: u64,
        needed: &BTreeSet<RowId>,
    ) -> Result<Rows, StoreError> {
        let mut values: Vec<(RowId, Option<Value>)> =
            needed.iter().map(|r| (r.clone(), None)).collect();
        if needed.is_empty() {
            return Ok(Rows::loaded(values));
        }
        let by_key: HashMap<(String, String), usize> = needed
            .iter()
            .enumerate()
            .map(|(i, r)| (row_key(name, generation, r), i))
            .collect();
        let keys = by_key
            .keys()
            .map(|(pk, sk)| {
                HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
            })
            .collect();
        for item in batch_get_consistent(&self.client, &self.tables.rows, keys).await? {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            let (Some(pk), Some(sk), Some(value)) =
                (text(keys::PK), text(keys::SK), text(ROW_VALUE))
            else {
                continue;
            };
            if let Some(i) = by_key.get(&(pk, sk)) {
                let value = serde_json::from_str(&value)
                    .map_err(|e| StoreError::internal("decoding a projection row", e))?;
                values[*i].1 = Some(value);
            }
        }
        Ok(Rows::loaded(values))
    }

    /// The checkpoint update, conditioned on the checkpoint as it was read.
    fn checkpoint_update(
        &self,
        pk: &str,
        read: Checkpoint,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.tables.checkpoints)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(CHECKPOINT_SK))
            .update_expression(expression)
            .expression_attribute_names("#pos", POSITION)
            .expression_attribute_names("#gen", GENERATION)
            .expression_attribute_names("#parked", PARKED)
            .expression_attribute_names("#fail", FAILURES)
            .expression_attribute_values(":gen", n(read.generation))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":oldfail", n(u64::from(read.failures)));
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        // DynamoDB refuses names an expression does not use.
        if expression.contains("#attempt") {
            update = update.expression_attribute_names("#attempt", FAILED_ATTEMPT);
        }
        // The live checkpoint is created by its first write. A rebuild's never is: it
        // exists from the rebuild's start until the switch deletes it, and recreating it
        // after the switch would replay into the generation just made live.
        update = if read.position == 0 && !is_rebuild(pk) {
            update.condition_expression(
                "(attribute_not_exists(#pos) OR #pos = :zero) AND (attribute_not_exists(#fail) OR #fail = :oldfail) AND (attribute_not_exists(#gen) OR #gen = :gen)",
            )
        } else {
            update
                .condition_expression("#pos = :old AND #gen = :gen AND #fail = :oldfail")
                .expression_attribute_values(":old", n(read.position))
        };
        let update = update
            .build()
            .map_err(|e| StoreError::internal("building an Update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn commit(
        &self,
        name: &str,
        pk: &str,
        read: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> Result<Commit, StoreError> {
        let mut writes = Vec::with_capacity(changes.len() + 1);
        for (row, value) in changes {
            let (pk, sk) = row_key(name, read.generation, row);
            let write = match value {
                Some(value) => {
                    let text = serde_json::to_string(value)
                        .map_err(|e| StoreError::internal("encoding a projection row", e))?;
                    let put = Put::builder()
                        .table_name(&self.tables.rows)
                        .item(keys::PK, s(pk))
                        .item(keys::SK, s(sk))
                        .item(ROW_VALUE, s(text))
                        .item(POSITION, n(position))
                        .build()
                        .map_err(|e| StoreError::internal("building a Put", e))?;
                    TransactWriteItem::builder().put(put).build()
                }
                None => {
                    let delete = Delete::builder()
                        .table_name(&self.tables.rows)
                        .key(keys::PK, s(pk))
                        .key(keys::SK, s(sk))
                        .build()
                        .map_err(|e| StoreError::internal("building a Delete", e))?;
                    TransactWriteItem::builder().delete(delete).build()
                }
            };
            writes.push(write);
        }
        writes.push(self.checkpoint_update(
            pk,
            read,
            "SET #pos = :new, #gen = if_not_exists(#gen, :gen), #parked = if_not_exists(#parked, :zero), #fail = :zero",
            vec![(":new", n(position))],
        )?);
        self.transact_sized(writes).await
    }

    /// The size DynamoDB counts for a row item: attribute names and values (a deleted
    /// row, its key), plus a margin for number encoding.
    fn row_bytes(
        &self,
        name: &str,
        generation: u64,
        row: &RowId,
        value: Option<&Value>,
    ) -> Result<usize, StoreError> {
        let (pk, sk) = row_key(name, generation, row);
        let key = keys::PK.len() + pk.len() + keys::SK.len() + sk.len();
        let Some(value) = value else {
            return Ok(key);
        };
        let text = serde_json::to_string(value)
            .map_err(|e| StoreError::internal("encoding a projection row", e))?;
        Ok(key + ROW_VALUE.len() + text.len() + POSITION.len() + 12)
    }

    /// `transact` for a step's commit, telling a refusal for size apart: a transaction
    /// over 4 MB or 100 actions (`ValidationException`), or with an item over 400 KB
    /// (cancelled with a `ValidationError` reason).
    async fn transact_sized(&self, writes: Vec<TransactWriteItem>) -> Result<Commit, StoreError> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Commit::Done),
                Err(e) => e,
            };
            if let Some(reason) = size_refusal(&err) {
                return Ok(Commit::Refused(reason));
            }
            let Some(codes) = cancellation_codes(&err) else {
                return Err(from_transaction(err));
            };
            match classify_cancellation(codes.iter().map(String::as_str)) {
                Cancellation::ConditionFailed => return Ok(Commit::Lost),
                _ if codes.iter().any(|c| c == "TransactionConflict") => return Ok(Commit::Lost),
                Cancellation::Busy if attempt + 1 < TRANSACTION_ATTEMPTS => {
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                }
                _ => return Err(from_transaction(err)),
            }
        }
        Err(StoreError::Unavailable {
            message: "TransactWriteItems kept being throttled".into(),
            source: None,
        })
    }

    /// Counts one failed attempt at the event after `read.position`. Idempotent: each
    /// attempt writes a token of its own, so when the answer is lost and the SDK's resend
    /// fails its condition, reading the token back tells that the count did land (and must
    /// not be counted again by the caller re-reading and failing anew).
    async fn count_failure(&self, pk: &str, read: Checkpoint) -> Result<bool, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let failures = u64::from(read.failures) + 1;
        let write = self.checkpoint_update(
            pk,
            read,
            "SET #pos = :same, #gen = if_not_exists(#gen, :gen), #parked = if_not_exists(#parked, :zero), #fail = :fail, #attempt = :attempt",
            vec![
                (":same", n(read.position)),
                (":fail", n(failures)),
                (":attempt", s(&token)),
            ],
        )?;
        if self.transact(vec![write]).await? {
            return Ok(true);
        }
        let stored =
            get_consistent(&self.client, &self.tables.checkpoints, pk, CHECKPOINT_SK).await?;
        Ok(stored.is_some_and(|item| {
            number(&item, POSITION) == read.position
                && number(&item, FAILURES) == failures
                && item.get(FAILED_ATTEMPT).and_then(|v| v.as_s().ok()) == Some(&token)
        }))
    }

    async fn park(
        &self,
        name: &str,
        pk: &str,
        read: Checkpoint,
        event: &RecordedEvent,
        message: &str,
    ) -> Result<bool, StoreError> {
        let position = event.global_position.unwrap_or(read.position + 1);
        let put = Put::builder()
            .table_name(&self.tables.checkpoints)
            .item(keys::PK, s(parked_pk(name, read.generation)))
            .item(keys::SK, s(format!("{position:020}")))
            .item("eventId", s(event.event_id.to_string()))
            .item("eventType", s(event.event_type.as_str()))
            .item("streamId", s(event.stream_id.as_str()))
            .item("error", s(bounded(message)))
            .item("attempts", n(u64::from(read.failures) + 1))
            .build()
            .map_err(|e| StoreError::internal("building a Put", e))?;
        let update = self.checkpoint_update(
            pk,
            read,
            "SET #pos = :new, #gen = if_not_exists(#gen, :gen), #parked = if_not_exists(#parked, :zero) + :one, #fail = :zero",
            vec![(":new", n(position)), (":one", n(1))],
        )?;
        tracing::error!(projection = name, event = %event.event_id, position, error = message,
            "event parked after {POISON_ATTEMPTS} failed attempts");
        self.transact(vec![TransactWriteItem::builder().put(put).build(), update])
            .await
    }

    /// `true` if committed; `false` if a condition failed (another projector moved first).
    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        transact_conditionally(&self.client, writes).await
    }

    /// Replays `projection` from position 1 into a fresh generation of its rows, then
    /// switches readers to it atomically. Reads keep answering from the live generation
    /// meanwhile, and the live projector keeps running. `progress` gets (position, head)
    /// after each step.
    ///
    /// Safe to re-run after any failure, and to run twice at once: a run resumes the
    /// rebuild in progress, and one that finds its generation already switched (by
    /// itself, its answer lost, or by a concurrent run) reports the live checkpoint. The
    /// live generation's rows are never written: a rebuild's checkpoint is created only
    /// while the live one is in the generation before it, and the switch deletes it in
    /// the same transaction that moves the live one.
    pub async fn rebuild(
        &self,
        projection: &dyn Projection,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Checkpoint, StoreError> {
        let name = projection.name();
        let rebuild_pk = rebuild_pk(name);
        let generation = self.start_rebuild(name).await?;
        loop {
            let head = self.head().await?;
            let rebuilt = loop {
                let Some(at) = self.rebuild_checkpoint(name, generation).await? else {
                    return self.switched(name, generation).await;
                };
                progress(at.position, head);
                if at.position >= head {
                    break at;
                }
                let step_to = at.position.saturating_add(1000).min(head);
                self.catch_up_at(projection, &rebuild_pk, Some(step_to))
                    .await?;
            };
            let live = self.checkpoint(name).await?;
            if live.generation >= generation {
                return self.switched(name, generation).await;
            }
            if live.position > rebuilt.position {
                // The live projector is ahead: catch up further first.
                continue;
            }
            // One transaction: the live checkpoint takes the rebuilt generation and position
            // (only if it is still where it was read), and the rebuild's checkpoint goes.
            let switch = self.checkpoint_update(
                &checkpoint_pk(name),
                live,
                "SET #pos = :new, #gen = :newgen, #parked = :parked, #fail = :zero",
                vec![
                    (":new", n(rebuilt.position)),
                    (":newgen", n(rebuilt.generation)),
                    (":parked", n(rebuilt.parked)),
                ],
            )?;
            let done = Delete::builder()
                .table_name(&self.tables.checkpoints)
                .key(keys::PK, s(&rebuild_pk))
                .key(keys::SK, s(CHECKPOINT_SK))
                .condition_expression("#pos = :at AND #gen = :gen")
                .expression_attribute_names("#pos", POSITION)
                .expression_attribute_names("#gen", GENERATION)
                .expression_attribute_values(":at", n(rebuilt.position))
                .expression_attribute_values(":gen", n(generation))
                .build()
                .map_err(|e| StoreError::internal("building a Delete", e))?;
            if self
                .transact(vec![
                    switch,
                    TransactWriteItem::builder().delete(done).build(),
                ])
                .await?
            {
                return self.checkpoint(name).await;
            }
            // A condition failed: the live projector or the rebuild moved, or the switch
            // already happened (this one with its answer lost, or a concurrent run's). The
            // next round re-reads both and tells which.
        }
    }

    /// The generation a rebuild of `name` fills: the one in progress if its checkpoint is
    /// the live generation's next, else a new one, created only while the live checkpoint
    /// is still in the generation before it.
    async fn start_rebuild(&self, name: &str) -> Result<u64, StoreError> {
        let rebuild_pk = rebuild_pk(name);
        for _ in 0..20 {
            let live = self.checkpoint(name).await?;
            let next = live.generation + 1;
            let found = self.checkpoint_at(&rebuild_pk).await?;
            let mut put = Put::builder()
                .table_name(&self.tables.checkpoints)
                .item(keys::PK, s(&rebuild_pk))
                .item(keys::SK, s(CHECKPOINT_SK))
                .item(POSITION, n(0))
                .item(GENERATION, n(next))
                .item(PARKED, n(0))
                .item(FAILURES, n(0))
                .expression_attribute_names("#pk", keys::PK);
            put = match found {
                Some(rebuild) if rebuild.generation == next => return Ok(next),
                // Left by an older version of this code, whose switch could recreate the
                // rebuild's checkpoint in the generation it had just made live: resuming
                // it would write live rows. It is replaced, only as it was read.
                Some(stale) => {
                    tracing::warn!(
                        projection = name,
                        stale = stale.generation,
                        live = live.generation,
                        "replacing a rebuild checkpoint that is not the live generation's next"
                    );
                    put.condition_expression("attribute_exists(#pk) AND #gen = :stale")
                        .expression_attribute_names("#gen", GENERATION)
                        .expression_attribute_values(":stale", n(stale.generation))
                }
                None => put.condition_expression("attribute_not_exists(#pk)"),
            };
            let put = put
                .build()
                .map_err(|e| StoreError::internal("building a Put", e))?;
            let live_unchanged = ConditionCheck::builder()
                .table_name(&self.tables.checkpoints)
                .key(keys::PK, s(checkpoint_pk(name)))
                .key(keys::SK, s(CHECKPOINT_SK))
                .condition_expression("attribute_not_exists(#gen) OR #gen = :gen")
                .expression_attribute_names("#gen", GENERATION)
                .expression_attribute_values(":gen", n(live.generation))
                .build()
                .map_err(|e| StoreError::internal("building a ConditionCheck", e))?;
            if self
                .transact(vec![
                    TransactWriteItem::builder().put(put).build(),
                    TransactWriteItem::builder()
                        .condition_check(live_unchanged)
                        .build(),
                ])
                .await?
            {
                return Ok(next);
            }
            // Another run started it, or the live generation moved: read again.
        }
        Err(StoreError::Unavailable {
            message: format!("the checkpoints of {name} keep moving; the rebuild did not start"),
            source: None,
        })
    }

    /// The checkpoint of the rebuild to `generation`, `None` once it is over.
    async fn rebuild_checkpoint(
        &self,
        name: &str,
        generation: u64,
    ) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .checkpoint_at(&rebuild_pk(name))
            .await?
            .filter(|c| c.generation == generation))
    }

    /// The answer of a rebuild to `generation` whose checkpoint is gone: done if the live
    /// checkpoint has reached that generation.
    async fn switched(&self, name: &str, generation: u64) -> Result<Checkpoint, StoreError> {
        let live = self.checkpoint(name).await?;
        if live.generation >= generation {
            tracing::info!(
                projection = name,
                generation,
                "the rebuild's generation is live"
            );
            return Ok(live);
        }
        Err(StoreError::corrupt(format!(
            "the rebuild of {name} to generation {generation} lost its checkpoint before its switch (was it deleted by hand?); re-run to start over"
        )))
    }

    /// An external subscriber's checkpoint (`SUBSCRIPTION#<name>` in the checkpoints table).
    pub async fn subscription(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let pk = format!("SUBSCRIPTION#{name}");
        let item =
            get_consistent(&self.client, &self.tables.checkpoints, &pk, CHECKPOINT_SK).await?;
        Ok(item.map(|item| number(&item, POSITION)))
    }

    /// Stores a subscriber's checkpoint. It never moves backwards unless `force`: then the
    /// stored position is returned as the error value and nothing changes.
    pub async fn save_subscription(
        &self,
        name: &str,
        position: u64,
        force: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.checkpoints)
            .item(keys::PK, s(format!("SUBSCRIPTION#{name}")))
            .item(keys::SK, s(CHECKPOINT_SK))
            .item(POSITION, n(position));
        if !force {
            put = put
                .condition_expression("attribute_not_exists(#pos) OR #pos <= :pos")
                .expression_attribute_names("#pos", POSITION)
                .expression_attribute_values(":pos", n(position))
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                );
        }
        match put.send().await {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(se)) => match se.err() {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                    Ok(Err(c.item().map(|i| number(i, POSITION)).unwrap_or(position)))
                }
                _ => Err(from_sdk("PutItem", SdkError::ServiceError(se))),
            },
            Err(e) => Err(from_sdk("PutItem", e)),
        }
    }

    /// Parked events of a projection's live generation, oldest first (all pages).
    pub async fn parked(&self, name: &str) -> Result<Vec<Parked>, StoreError> {
        let generation = self.checkpoint(name).await?.generation;
        let mut found = self.parked_under(&parked_pk(name, generation)).await?;
        if generation == 1 {
            found.extend(self.parked_under(&legacy_parked_pk(name)).await?);
            found.sort_by_key(|p| p.position);
            found.dedup_by_key(|p| p.position);
        }
        Ok(found)
    }

    async fn parked_under(&self, pk: &str) -> Result<Vec<Parked>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.checkpoints)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("Query", e))?;
            for item in out.items.unwrap_or_default() {
                let text = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                found.push(Parked {
                    position: text(keys::SK).parse().unwrap_or(0),
                    event_id: text("eventId"),
                    error: text("error"),
                });
            }
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(found),
            }
        }
    }

    /// The rows under `key` in the projection's live generation, `after` an item, at most
    /// `limit` (with the item to continue after, if there are more).
    pub async fn rows(
        &self,
        name: &str,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, Value)>, Option<String>), StoreError> {
        let generation = self.checkpoint(name).await?.generation;
        let (pk, _) = row_key(name, generation, &RowId::single(key));
        let mut rows = Vec::new();
        let mut start = after.map(|item| {
            HashMap::from([
                (keys::PK.to_owned(), s(&pk)),
                (keys::SK.to_owned(), s(item)),
            ])
        });
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.rows)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(&pk))
                .limit(i32::try_from(limit + 1 - rows.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("Query", e))?;
            for item in out.items.unwrap_or_default() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let (Some(sk), Some(value)) = (text(keys::SK), text(ROW_VALUE)) else {
                    continue;
                };
                if rows.len() == limit {
                    let next = rows.last().map(|(item, _): &(String, Value)| item.clone());
                    return Ok((rows, next));
                }
                let value = serde_json::from_str(&value)
                    .map_err(|e| StoreError::internal("decoding a projection row", e))?;
                rows.push((if sk == "-" { String::new() } else { sk }, value));
            }
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok((rows, None)),
            }
        }
    }

    /// The Lambda entry point for the counter's stream records: brings every projection up
    /// to the highest position the batch's records name (see [`Projector::catch_up_all`]).
    /// If a projection fails, the first record is reported, so the event source retries
    /// (what committed is not repeated). One left behind, out of time or because the index
    /// lags, does not fail the batch: retrying it could not do more than the scheduled
    /// catch-up does, and Lambda's retries run out.
    pub async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        let up_to = event
            .records
            .iter()
            .filter_map(|r| match r.change.new_image.get(keys::COUNTER_LAST) {
                Some(serde_dynamo::AttributeValue::N(v)) => v.parse::<u64>().ok(),
                _ => None,
            })
            .max();
        let Some(up_to) = up_to else {
            return Ok(DynamoDbEventResponse::default());
        };
        let pass = Box::pin(self.catch_up_all(Some(up_to))).await?;
        emit_pass_metrics(&pass);
        match pass.failed.into_iter().next() {
            None => Ok(DynamoDbEventResponse::default()),
            Some((_, err)) => retry_batch(&event, err),
        }
    }

    /// The scheduled catch-up (`infra/template.yaml`'s `CatchUp` schedule; locally a timer):
    /// brings every projection towards the head whether or not new events arrive, so one
    /// left behind reaches the head by itself once the index has caught up.
    pub async fn handle_scheduled(&self) -> Result<Pass, StoreError> {
        let pass = Box::pin(self.catch_up_all(None)).await?;
        emit_pass_metrics(&pass);
        // Once a minute, each projection's distance from the head: what the lag alarm
        // watches (one consistent read per projection).
        for projection in &self.projections {
            let position = self.checkpoint(projection.name()).await?.position;
            let mut lag = Metrics::new().dimension("Projection", projection.name());
            lag.put(
                &metrics::PROJECTION_LAG,
                pass.target.saturating_sub(position) as f64,
            );
            lag.emit();
        }
        match pass.failed.first() {
            None => Ok(pass),
            Some((name, err)) => Err(StoreError::Unavailable {
                message: format!("projection {name} failed: {err}"),
                source: None,
            }),
        }
    }

    /// Whatever the Lambda function is invoked with: a batch of stream records (the
    /// response to it is Lambda's partial batch response), or the scheduled event.
    pub async fn invoke(&self, payload: Value) -> Result<Value, StoreError> {
        if payload.get("Records").is_some() {
            let event: Event = serde_json::from_value(payload)
                .map_err(|e| StoreError::internal("decoding a DynamoDB stream event", e))?;
            // Boxed, as the catch-ups inside: the Lambda runtime's service future must stay
            // within the compiler's layout depth.
            let response = Box::pin(self.handle(event)).await?;
            return serde_json::to_value(response)
                .map_err(|e| StoreError::internal("encoding the batch response", e));
        }
        if payload.get("source").and_then(Value::as_str) == Some("aws.events") {
            Box::pin(self.handle_scheduled()).await?;
            return Ok(Value::Null);
        }
        Err(StoreError::corrupt(
            "the projector was invoked with neither stream records nor a scheduled event",
        ))
    }

    /// Runs the projector locally as the deployed stack does, for as long as the process
    /// lives: the counter's stream records through the local event source, and the
    /// scheduled catch-up on a timer (every [`Projector::with_local_catch_up_every`]).
    pub async fn run_locally(self) {
        let every = self.local_catch_up_every;
        let timer = {
            let projector = self.clone();
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(err) = projector.handle_scheduled().await {
                        tracing::warn!(error = %err, "scheduled catch-up failed");
                    }
                }
            }
        };
        tokio::join!(run_locally(self, "projector"), timer);
    }

    /// The local event source that feeds this projector as the template's mapping does.
    pub async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        LocalEventSource::for_table(self.store.log(), COUNTER_FILTER).await
    }
}

/// How a step's commit ended.
enum Commit {
    Done,
    /// A condition failed: another projector moved first.
    Lost,
    /// Too large for DynamoDB, with its reason.
    Refused(String),
}

/// One projection's catch-up in progress.
struct Tracker<'a> {
    projection: &'a dyn Projection,
    pk: String,
    target: u64,
    report: ProjectReport,
    /// Steps in a row lost to another projector.
    lost_races: u32,
    /// Reads in a row that found the next position not yet in the index.
    lag_waits: u32,
    /// Since when the index has lagged behind the checkpoint, in a round-robin catch-up.
    lagging_since: Option<Instant>,
    /// Events a step reads: halved while DynamoDB refuses the step's transaction as too
    /// large, back to the full page after a commit.
    limit: usize,
}

impl<'a> Tracker<'a> {
    fn new(projection: &'a dyn Projection, pk: String, target: u64) -> Self {
        Self {
            projection,
            pk,
            target,
            report: ProjectReport::default(),
            lost_races: 0,
            lag_waits: 0,
            lagging_since: None,
            limit: EVENTS_PER_STEP,
        }
    }
}

/// What one step of a catch-up found.
enum Advance {
    AtTarget,
    Moved,
    /// The position after the checkpoint is not in the global index yet.
    Lagging(u64),
}

fn index_lagging(position: u64) -> StoreError {
    StoreError::Unavailable {
        message: format!("position {position} is not visible in the global index yet"),
        source: None,
    }
}

/// Waits for a lagging index: 50 ms doubling.
fn lag_backoff(waits: u32) -> Duration {
    Duration::from_millis(50 << waits.min(5))
}

enum Step {
    Done,
    /// DynamoDB refused the step's transaction as too large: try this many events.
    Shrink(usize),
    Lost,
    Failed(StoreError),
}

impl crate::event_source::StreamConsumer for Projector {
    async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        Projector::local_source(self).await
    }

    async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        Projector::handle(self, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn only_size_and_length_validation_errors_are_refusals_for_size() {
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        use aws_sdk_dynamodb::types::CancellationReason;
        let response = || {
            HttpResponse::new(
                400u16.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::empty(),
            )
        };
        let validation = |message: &str| {
            SdkError::service_error(
                TransactWriteItemsError::generic(
                    aws_sdk_dynamodb::error::ErrorMetadata::builder()
                        .code("ValidationException")
                        .message(message)
                        .build(),
                ),
                response(),
            )
        };
        assert_eq!(
            size_refusal(&validation(
                "Item size has exceeded the maximum allowed size"
            )),
            Some("ValidationException: Item size has exceeded the maximum allowed size".into())
        );
        assert_eq!(
            size_refusal(&validation(
                "Member must have length less than or equal to 100"
            )),
            Some("ValidationException: Member must have length less than or equal to 100".into())
        );
        // The projector's own mistake is no reason to park an event.
        assert_eq!(
            size_refusal(&validation(
                "Value provided in ExpressionAttributeNames unused in expressions"
            )),
            None
        );
        let cancelled = |code: &str| {
            SdkError::service_error(
                TransactWriteItemsError::TransactionCanceledException(
                    TransactionCanceledException::builder()
                        .cancellation_reasons(CancellationReason::builder().code("None").build())
                        .cancellation_reasons(
                            CancellationReason::builder()
                                .code(code)
                                .message("Item size has exceeded the maximum allowed size")
                                .build(),
                        )
                        .build(),
                ),
                response(),
            )
        };
        assert_eq!(
            size_refusal(&cancelled("ValidationError")),
            Some("ValidationError: Item size has exceeded the maximum allowed size".into())
        );
        assert_eq!(size_refusal(&cancelled("ConditionalCheckFailed")), None);
    }
}
