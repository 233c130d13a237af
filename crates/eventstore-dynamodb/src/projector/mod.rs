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

use crate::error::{from_sdk, from_transaction};
use crate::event_source::{retry_batch, run_locally, LocalEventSource};
use crate::keys;
use crate::log::{batch_get_consistent, get_consistent, transact_conditionally, DynamoEventLog};
use crate::metrics::{self, Metrics};

mod reads;
mod rebuild;
mod step;
mod trigger;

/// Failed attempts at one event before it is parked.
pub const POISON_ATTEMPTS: u32 = 3;
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
