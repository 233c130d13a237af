//! The projection engine: brings projections to a position of the global order, one step
//! at a time, each step committed with the checkpoint it moves.
//!
//! For each projection it repeats, until its checkpoint reaches the target:
//!
//! 1. read the checkpoint (consistently);
//! 2. read `$all` after it, gap-aware (a page never skips a position);
//! 3. read the rows the page's events touch, apply the events in order in memory, upcast
//!    first;
//! 4. commit every changed row once, and the checkpoint, atomically, conditioned on the
//!    checkpoint read in step 1.
//!
//! A crash before step 4 writes nothing; a crash after it leaves rows and checkpoint
//! consistent; a second engine racing on the same projection fails its condition and
//! re-reads. So redelivered or duplicated triggers change nothing twice.
//!
//! An event a projection cannot apply is retried on the next catch-ups; after
//! [`POISON_ATTEMPTS`] failures it is parked (recorded with its error) and the checkpoint
//! moves past it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::port::{Parked, ProjectionStore, Slot};
use super::{Checkpoint, Projection};
use crate::{EventLog, EventStore, GlobalFilter, StoreError, Upcasters};

/// Failed attempts at one event before it is parked.
pub const POISON_ATTEMPTS: u32 = 3;
/// How long [`ProjectionEngine::catch_up_all`] starts new rounds of steps, by default: half
/// the projector function's 120 s timeout.
const INVOCATION_BUDGET: Duration = Duration::from_secs(60);
/// Short waits for a lagging global index before a direct catch-up gives up: 50 ms
/// doubling, about 3 s in all.
const LAG_WAITS: u32 = 6;
/// How long a round-robin catch-up waits for a lagging global index before it leaves the
/// projection behind for the next trigger. The counter's record that triggers a pass comes
/// as the sequencer claims positions, before it writes them on the events (a claim of a
/// thousand events takes a few hundred milliseconds), and the index follows those writes.
pub(super) const LAG_PATIENCE: Duration = Duration::from_secs(5);
/// Events read from `$all` per step.
pub(super) const EVENTS_PER_STEP: usize = 100;
/// Steps in a row lost to another engine before a catch-up gives up.
const LOST_RACES: u32 = 20;

/// What a catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProjectReport {
    /// Events the projection handled and applied.
    pub applied: u64,
    /// Row writes (puts or deletes), each changed row once per commit.
    pub rows_written: u64,
    pub transactions: u64,
    pub parked: u64,
}

/// What one pass over every projection did.
#[derive(Debug, Default)]
pub struct Pass {
    /// The position the projections were brought towards.
    pub target: u64,
    /// Per projection, what its catch-up did.
    pub reports: Vec<(String, ProjectReport)>,
    /// Projections left short of the target: out of time, or the index lags. The next
    /// pass goes on from their checkpoints.
    pub behind: Vec<String>,
    /// Projections that failed, with their errors.
    pub failed: Vec<(String, StoreError)>,
}

/// Runs projections over an event log, keeping their rows and checkpoints in `S`.
pub struct ProjectionEngine<L, S> {
    pub(super) store: EventStore<L>,
    pub(super) rows: S,
    pub(super) projections: Vec<Arc<dyn Projection>>,
    pub(super) upcasters: Upcasters,
    pub(super) invocation_budget: Duration,
}

impl<L: Clone, S: Clone> Clone for ProjectionEngine<L, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            rows: self.rows.clone(),
            projections: self.projections.clone(),
            upcasters: self.upcasters.clone(),
            invocation_budget: self.invocation_budget,
        }
    }
}

impl<L, S: std::fmt::Debug> std::fmt::Debug for ProjectionEngine<L, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
        f.debug_struct("ProjectionEngine")
            .field("store", &self.rows)
            .field("projections", &names)
            .finish()
    }
}

/// The live checkpoint of a projection never written: position 0 of generation 1.
pub(super) fn initial() -> Checkpoint {
    Checkpoint {
        generation: 1,
        ..Checkpoint::default()
    }
}

impl<L: EventLog, S: ProjectionStore> ProjectionEngine<L, S> {
    pub fn new(log: L, store: S, projections: Vec<Arc<dyn Projection>>) -> Self {
        Self {
            store: EventStore::new(log),
            rows: store,
            projections,
            upcasters: Upcasters::new(),
            invocation_budget: INVOCATION_BUDGET,
        }
    }

    /// How long [`ProjectionEngine::catch_up_all`] starts new rounds of steps (default: a
    /// minute, half the projector function's timeout, so the last round ends within it).
    pub fn with_invocation_budget(mut self, budget: Duration) -> Self {
        self.invocation_budget = budget;
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

    /// The store of rows and checkpoints.
    pub fn store(&self) -> &S {
        &self.rows
    }

    /// The event log the projections read.
    pub fn log(&self) -> &L {
        self.store.log()
    }

    /// The projection's live checkpoint, read consistently (position 0, generation 1
    /// before its first write).
    pub async fn checkpoint(&self, name: &str) -> Result<Checkpoint, StoreError> {
        Ok(self
            .rows
            .checkpoint(&Slot::Live(name.to_owned()))
            .await?
            .unwrap_or_else(initial))
    }

    /// The last global position handed out: how far projections can go.
    pub async fn head(&self) -> Result<u64, StoreError> {
        self.store.log().last_position().await
    }

    /// Parked events of a projection's live generation, oldest first.
    pub async fn parked(&self, name: &str) -> Result<Vec<Parked>, StoreError> {
        let generation = self.checkpoint(name).await?.generation;
        self.rows.parked(name, generation).await
    }

    /// The rows under `key` in the projection's live generation, `after` an item, at most
    /// `limit` (with the item to continue after, if there are more).
    #[allow(clippy::type_complexity)]
    pub async fn rows(
        &self,
        name: &str,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, serde_json::Value)>, Option<String>), StoreError> {
        let generation = self.checkpoint(name).await?.generation;
        self.rows.rows(name, generation, key, after, limit).await
    }

    /// Brings one projection up to `up_to` (default: the head), step by step.
    pub async fn catch_up(
        &self,
        projection: &dyn Projection,
        up_to: Option<u64>,
    ) -> Result<ProjectReport, StoreError> {
        self.catch_up_at(projection, Slot::Live(projection.name().to_owned()), up_to)
            .await
    }

    /// `catch_up` of the checkpoint `slot`. An index that keeps lagging after a few short
    /// waits is `Unavailable`.
    pub(super) async fn catch_up_at(
        &self,
        projection: &dyn Projection,
        slot: Slot,
        up_to: Option<u64>,
    ) -> Result<ProjectReport, StoreError> {
        let target = match up_to {
            Some(p) => p,
            None => self.head().await?,
        };
        let mut tracker = Tracker::new(projection, slot, target);
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
    pub(super) async fn advance(&self, tracker: &mut Tracker<'_>) -> Result<Advance, StoreError> {
        let checkpoint = match self.rows.checkpoint(&tracker.slot).await? {
            Some(checkpoint) => checkpoint,
            // A rebuild's checkpoint exists from its start until its switch: gone, the
            // rebuild is over (`rebuild` finds out how), and there is nothing to do.
            None if matches!(tracker.slot, Slot::Rebuild(_)) => return Ok(Advance::AtTarget),
            None => initial(),
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
        let span = tracing::info_span!(
            "projection.step",
            projection = tracker.projection.name(),
            events = page.events.len()
        );
        let step = self
            .step(
                tracker.projection,
                &tracker.slot,
                checkpoint,
                page.events,
                &mut tracker.report,
            )
            .instrument(span)
            .await?;
        match step {
            Step::Done => {
                tracker.lost_races = 0;
                tracker.limit = EVENTS_PER_STEP;
            }
            Step::Shrink(events) => tracker.limit = events,
            Step::Lost => {
                tracker.lost_races += 1;
                if tracker.lost_races > LOST_RACES {
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
}

/// One projection's catch-up in progress.
pub(super) struct Tracker<'a> {
    pub(super) projection: &'a dyn Projection,
    pub(super) slot: Slot,
    pub(super) target: u64,
    pub(super) report: ProjectReport,
    /// Steps in a row lost to another engine.
    pub(super) lost_races: u32,
    /// Reads in a row that found the next position not yet in the index.
    pub(super) lag_waits: u32,
    /// Since when the index has lagged behind the checkpoint, in a round-robin catch-up.
    pub(super) lagging_since: Option<Instant>,
    /// Events a step reads: halved while storage refuses the step's commit as too large,
    /// back to the full page after a commit.
    pub(super) limit: usize,
}

impl<'a> Tracker<'a> {
    pub(super) fn new(projection: &'a dyn Projection, slot: Slot, target: u64) -> Self {
        Self {
            projection,
            slot,
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
pub(super) enum Advance {
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
pub(super) fn lag_backoff(waits: u32) -> Duration {
    Duration::from_millis(50 << waits.min(5))
}

/// How one step ended.
pub(super) enum Step {
    Done,
    /// Storage refused the step's commit as too large: try this many events.
    Shrink(usize),
    Lost,
    Failed(StoreError),
}
