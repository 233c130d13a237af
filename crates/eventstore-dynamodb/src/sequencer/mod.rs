//! The sequencer: gives every event its global position, 1, 2, 3, ... with no gap and no
//! duplicate, each event exactly once, and a stream's events in version order.
//!
//! It is driven by the table's DynamoDB Stream, but trusts nothing about the records: they
//! arrive at least once, ordered only per item, possibly on several shards at once. A record
//! is only a hint that a stream has events up to some version. The truth is in the table:
//!
//! * an event holds its position or none, and a stream's events holding one are a prefix
//!   of it (its *boundary* is the last of them);
//! * the counter item (`COUNTER#ALL`) holds the last position handed out, and the claim
//!   that handed out the last positions: which events they went to.
//!
//! A round finds the hinted streams' boundaries (`round.rs`), plans a claim of up to
//! [`claim::MAX_CLAIM_EVENTS`] events, writes it on the counter with one conditional
//! `UpdateItem` (only if the counter is still where the round found it), and then rolls it
//! forward: each event gets its position, idempotently. A
//! racing sequencer makes one of the two claims fail; the loser rolls forward the winner's
//! claim, re-reads and goes again. Whoever claims next first makes sure the claim before is
//! rolled forward, so a crash between the claim and the roll loses nothing: the next round
//! anywhere, or the scheduled sweep, finishes it. See `round.rs` for why no position is
//! handed out twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventstore_core::{StoreError, StreamId, Timestamp};
use tracing::Instrument;

use crate::io::conflict_backoff;
use crate::log::DynamoEventLog;
use crate::trigger::FailedBatches;

mod boundary;
mod claim;
mod planner;
mod repair;
mod roll;
mod round;
mod sweep;

pub(crate) use planner::Unsequenced;
use round::Round;

/// Streams handled per round: what they need read is read by concurrent BatchGetItems of
/// 100 keys each. Large rounds make large claims: at 10,000 events a
/// second over many streams, a claim of 500 streams' events is what keeps the counter
/// written a few times a second rather than hundreds.
const STREAMS_PER_ROUND: usize = 500;
/// Most streams' boundaries a sequencer keeps between rounds (about 100 bytes each).
const MAX_KNOWN_BOUNDS: usize = 100_000;
/// Rounds in a row that may lose to another writer of the counter before the sequencer
/// gives up for now (the batch is then retried by the event source).
const MAX_LOST_ROUNDS: u32 = 40;
/// A sweep replays no new failed batch after this long (the function's timeout is 60 s);
/// what it leaves stays in the queue for the next sweep.
pub(crate) const SWEEP_BUDGET: Duration = Duration::from_secs(40);

/// A stream has events up to `version` (perhaps already sequenced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHint {
    pub stream: StreamId,
    pub version: u64,
}

/// What a batch's stream records say of the events they announce (their new images), per
/// stream and version: as much as sequencing needs, so that a round need not read again
/// events its records already carry.
#[derive(Debug, Default, Clone)]
pub struct Images(HashMap<StreamId, BTreeMap<u64, Unsequenced>>);

impl Images {
    pub(crate) fn add(&mut self, stream: StreamId, event: Unsequenced) {
        self.0
            .entry(stream)
            .or_default()
            .insert(event.version, event);
    }

    /// The lowest version from which the images hold every event up to the hint's.
    fn first(&self, hint: &StreamHint) -> Option<u64> {
        let versions = self.0.get(&hint.stream)?;
        versions.get(&hint.version)?;
        let mut first = hint.version;
        while first > 1 && versions.contains_key(&(first - 1)) {
            first -= 1;
        }
        Some(first)
    }

    /// The events from `first` to the hint's version (at most a claim's worth), if the
    /// images hold every one of them; `None` if any is missing.
    fn from(&self, hint: &StreamHint, first: u64) -> Option<Vec<Unsequenced>> {
        if first == 0 || first > hint.version {
            return None;
        }
        let last = hint
            .version
            .min(first.saturating_add(round::MAX_EVENTS_FROM_IMAGES - 1));
        let events: Vec<Unsequenced> = self
            .0
            .get(&hint.stream)?
            .range(first..=last)
            .map(|(_, e)| e.clone())
            .collect();
        (events.len() as u64 == (last + 1).saturating_sub(first) && !events.is_empty())
            .then_some(events)
    }
}

/// What a call to [`Sequencer::sequence`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SequenceReport {
    /// Events given a position by this call.
    pub events: u64,
    /// Claims written (each one conditional write on the counter).
    pub claims: u64,
    /// Rounds lost to another sequencer and retried.
    pub lost_rounds: u64,
    /// The longest time from append to position among the events sequenced, in ms.
    pub max_lag_ms: Option<u64>,
    /// Hinted streams that had unsequenced events when first read.
    pub streams_behind: u64,
}

/// What a call to [`Sequencer::sweep`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Failed batches replayed from the stream (their messages deleted).
    pub batches: u64,
    /// Failed batches that could not be replayed: their records are gone from the stream
    /// (or the message is not a failed batch). Their messages stay in the queue.
    pub unreplayable: u64,
    /// Streams the replayed batches named that had unsequenced events.
    pub streams: u64,
    /// Events given a position.
    pub events: u64,
    /// The longest time from append to position among them, in ms.
    #[serde(skip)]
    pub max_lag_ms: Option<u64>,
}

/// Gives positions to the events of one events table.
#[derive(Debug, Clone)]
pub struct Sequencer {
    log: DynamoEventLog,
    /// The counter's last position as this process last wrote or found it, once the claim
    /// it holds was rolled forward: a warm sequencer plans on it without reading the
    /// counter. If another sequencer has claimed since, the conditional claim fails and
    /// says so. `None` when unknown (cold, or after an ambiguous write).
    known: Arc<Mutex<Option<u64>>>,
    /// Streams' boundaries (the last version holding a position) as this process left or
    /// found them since it last learned the counter from outside: exact as long as no other
    /// sequencer has claimed since, which the next claim, written only on `known`, checks.
    /// Forgotten with `known`.
    bounds: Arc<Mutex<HashMap<String, u64>>>,
    /// Where the stream path records the batches it gives up on, for the sweep to replay
    /// (`trigger::failed`). `None`: the sweep only settles the counter.
    failed: Option<FailedBatches>,
    /// One call at a time per process (clones share it): `known` and `bounds` must change
    /// together, newest last. Two calls interleaving could leave an older boundary beside
    /// a newer `known`, and a claim on that `known` would succeed on a stale boundary. On
    /// Lambda a process runs one invocation at a time anyway; `make dev` runs the sweep
    /// beside the stream path. Separate processes are kept apart by the counter's condition.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Sequencer {
    pub fn new(log: DynamoEventLog) -> Self {
        Self {
            log,
            known: Arc::default(),
            bounds: Arc::default(),
            failed: None,
            gate: Arc::default(),
        }
    }

    /// This sequencer, replaying in its sweeps the failed batches `failed` holds, and
    /// locally sending there the batches its event source gives up on.
    #[must_use]
    pub fn with_failed_batches(mut self, failed: Option<FailedBatches>) -> Self {
        self.failed = failed;
        self
    }

    pub fn failed_batches(&self) -> Option<&FailedBatches> {
        self.failed.as_ref()
    }

    fn known(&self) -> Option<u64> {
        self.known.lock().ok().and_then(|k| *k)
    }

    fn remember(&self, last: u64) {
        if let Ok(mut known) = self.known.lock() {
            *known = Some(last);
        }
    }

    fn forget(&self) {
        if let Ok(mut known) = self.known.lock() {
            *known = None;
        }
        self.forget_bounds();
    }

    /// Forgets the boundaries: another sequencer may have claimed since they were learned.
    fn forget_bounds(&self) {
        if let Ok(mut bounds) = self.bounds.lock() {
            bounds.clear();
        }
    }

    /// Remembers streams' boundaries as a round leaves them.
    fn learn<'a>(&self, found: impl Iterator<Item = (&'a str, u64)>) {
        if let Ok(mut bounds) = self.bounds.lock() {
            if bounds.len() > MAX_KNOWN_BOUNDS {
                // A warm function's streams come back; a bounded map keeps memory flat
                // when they do not.
                bounds.clear();
            }
            for (stream, boundary) in found {
                bounds.insert(stream.to_owned(), boundary);
            }
        }
    }

    pub fn log(&self) -> &DynamoEventLog {
        &self.log
    }

    /// Sequences every hinted stream at least up to its hinted version (and whatever else
    /// of it is unsequenced when it is read). Safe to call with stale, repeated or
    /// reordered hints, and from several processes at once.
    pub async fn sequence(&self, hints: &[StreamHint]) -> Result<SequenceReport, StoreError> {
        self.sequence_with(hints, &Images::default()).await
    }

    /// [`Sequencer::sequence`], with what the stream records said of the events they
    /// announce: a stream whose images reach from its boundary to its hint is not read again.
    pub async fn sequence_with(
        &self,
        hints: &[StreamHint],
        images: &Images,
    ) -> Result<SequenceReport, StoreError> {
        let _turn = self.gate.lock().await;
        self.sequence_in_turn(hints, images).await
    }

    /// [`Sequencer::sequence_with`] by a caller that holds the gate.
    pub(crate) async fn sequence_in_turn(
        &self,
        hints: &[StreamHint],
        images: &Images,
    ) -> Result<SequenceReport, StoreError> {
        // One hint per stream, in first-seen order, with its highest version.
        let mut slots: HashMap<&StreamId, usize> = HashMap::new();
        let mut pending: Vec<StreamHint> = Vec::new();
        for hint in hints {
            match slots.get(&hint.stream) {
                Some(&slot) => pending[slot].version = pending[slot].version.max(hint.version),
                None => {
                    slots.insert(&hint.stream, pending.len());
                    pending.push(hint.clone());
                }
            }
        }
        let mut behind: HashSet<StreamId> = HashSet::new();
        let mut report = SequenceReport::default();
        let mut lost_in_a_row = 0;
        // The last claim written and not rolled forward yet: the next round rolls it while
        // it reads, and the last is rolled before this returns.
        let mut unrolled = None;
        while !pending.is_empty() {
            let chunk = pending.len().min(STREAMS_PER_ROUND);
            // A span per round: an X-Ray subsegment holding the round's DynamoDB calls.
            let span = tracing::info_span!("sequencer.round", streams = chunk);
            match self
                .round(&pending[..chunk], &mut behind, images, unrolled.take())
                .instrument(span)
                .await?
            {
                Round::Committed {
                    done,
                    claim,
                    oldest,
                } => {
                    let events = claim.as_ref().map_or(0, claim::Claim::events);
                    unrolled = claim;
                    let lag = oldest
                        .as_deref()
                        .and_then(Timestamp::parse)
                        .map(|t| t.elapsed_millis());
                    report.max_lag_ms = report.max_lag_ms.max(lag);
                    lost_in_a_row = 0;
                    report.events += events;
                    report.claims += u64::from(events > 0);
                    let mut slot = 0;
                    pending.retain(|_| {
                        let keep = slot >= chunk || !done[slot];
                        slot += 1;
                        keep
                    });
                }
                Round::Lost => {
                    report.lost_rounds += 1;
                    lost_in_a_row += 1;
                    if lost_in_a_row >= MAX_LOST_ROUNDS {
                        return Err(StoreError::Unavailable {
                            message: "the sequencer kept losing races for the counter".into(),
                            source: None,
                        });
                    }
                    tokio::time::sleep(conflict_backoff(lost_in_a_row.min(4))).await;
                }
            }
        }
        if let Some(claim) = unrolled {
            if let Err(err) = self.roll(&claim).await {
                self.forget();
                return Err(err);
            }
            self.remember(claim.last());
        }
        report.streams_behind = behind.len() as u64;
        Ok(report)
    }
}
