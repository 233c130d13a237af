//! What the projection engine needs from storage: checkpoints, rows, and one atomic commit
//! of both. The DynamoDB adapter implements it with one `TransactWriteItems` per commit;
//! `memory::InMemoryProjections` in memory, for tests.

use std::collections::BTreeSet;
use std::future::Future;

use serde_json::Value;

use super::{Checkpoint, RowId, Rows};
use crate::StoreError;

/// Which checkpoint of a projection a catch-up moves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// The checkpoint readers follow.
    Live(String),
    /// A rebuild's, filling the next generation of rows until the switch.
    Rebuild(String),
}

impl Slot {
    /// The projection's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Live(name) | Self::Rebuild(name) => name,
        }
    }
}

/// How a commit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    Done,
    /// The checkpoint is no longer as read: another projector moved first. Nothing written.
    Lost,
    /// Storage refused the commit as too large, with its reason. Nothing written.
    Refused(String),
}

/// What one commit can hold. A step stops adding events before it would exceed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitLimits {
    /// Rows written beside the checkpoint.
    pub rows: usize,
    /// Bytes of rows, as [`ProjectionStore::row_size`] counts them. A single event's rows
    /// may exceed it: storage then decides.
    pub bytes: usize,
    /// Bytes of one row: an event that would write a larger one cannot be applied.
    pub row_bytes: usize,
    /// The storage's name, for messages: "DynamoDB".
    pub storage: &'static str,
    /// `row_bytes` as messages name it: "DynamoDB's 400 KB item limit".
    pub row_limit: &'static str,
}

/// An event the engine gives up on, as it is parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    pub position: u64,
    pub event_id: String,
    pub event_type: String,
    pub stream_id: String,
    pub error: String,
    /// Failed attempts, this one included.
    pub attempts: u32,
}

/// A parked event, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub position: u64,
    pub event_id: String,
    pub error: String,
}

/// Checkpoints, rows and parked events of projections. Every write is conditioned on the
/// checkpoint as the engine read it, and writes nothing when that condition fails, so two
/// engines racing on one projection never apply an event twice.
pub trait ProjectionStore: Send + Sync {
    /// What one [`ProjectionStore::commit`] can hold.
    fn limits(&self) -> CommitLimits;

    /// The bytes storage counts for `row` with `value` (`None`: its deletion).
    fn row_size(
        &self,
        name: &str,
        generation: u64,
        row: &RowId,
        value: Option<&Value>,
    ) -> Result<usize, StoreError>;

    /// The checkpoint, read consistently; `None` if it was never written (or, for a
    /// rebuild's, once the rebuild is over).
    fn checkpoint(
        &self,
        slot: &Slot,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// The rows of `generation`, read consistently; absent rows as `None`.
    fn load_rows(
        &self,
        name: &str,
        generation: u64,
        rows: &BTreeSet<RowId>,
    ) -> impl Future<Output = Result<Rows, StoreError>> + Send;

    /// Writes `changes` to the rows of `read.generation` and moves the checkpoint to
    /// `position` (failures back to 0), all or nothing, only if the checkpoint is still
    /// `read`. A live checkpoint never written counts as position 0 of generation 1; a
    /// rebuild's is never created here.
    fn commit(
        &self,
        slot: &Slot,
        read: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> impl Future<Output = Result<Commit, StoreError>> + Send;

    /// Counts one more failed attempt at the event after `read.position`, only if the
    /// checkpoint is still `read`. `false`: it was not (another engine moved first).
    /// Idempotent under retries of a lost answer: it is counted once.
    fn count_failure(
        &self,
        slot: &Slot,
        read: Checkpoint,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records `event` as parked in `read.generation` and moves the checkpoint to its
    /// position (parked count up by one, failures back to 0), all or nothing, only if the
    /// checkpoint is still `read`. `false`: it was not.
    fn park(
        &self,
        slot: &Slot,
        read: Checkpoint,
        event: &ParkedEvent,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates the rebuild checkpoint of `name` at position 0 of generation
    /// `live.generation + 1`, only if the live checkpoint is still in `live.generation`
    /// and the rebuild's is as found: absent (`stale: None`) or in generation `stale`.
    fn start_rebuild(
        &self,
        name: &str,
        live: Checkpoint,
        stale: Option<u64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves the live checkpoint to `rebuilt` (its generation, position and parked count)
    /// and deletes the rebuild's, all or nothing, only if the live one is still `live` and
    /// the rebuild's still `rebuilt`.
    fn switch(
        &self,
        name: &str,
        live: Checkpoint,
        rebuilt: Checkpoint,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Applies the event parked at `position` late: writes `changes` to the rows of
    /// `live.generation`, deletes the parked record and counts one parked event less on the
    /// live checkpoint, all or nothing, only if the live checkpoint is still `live` and the
    /// record still there. `false`: either was not.
    fn unpark(
        &self,
        name: &str,
        live: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The parked events of `generation`, oldest first (all of them).
    fn parked(
        &self,
        name: &str,
        generation: u64,
    ) -> impl Future<Output = Result<Vec<Parked>, StoreError>> + Send;

    /// The rows under `key` in `generation`, ordered by item, after `after`, at most
    /// `limit` (with the item to continue after, if there are more). The single row of a
    /// key has the empty item.
    #[allow(clippy::type_complexity)]
    fn rows(
        &self,
        name: &str,
        generation: u64,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<(String, Value)>, Option<String>), StoreError>> + Send;
}

/// Checkpoints of external subscribers: how far a reader of the global order has got.
pub trait SubscriptionStore: Send + Sync {
    /// The subscriber's position, `None` if it never saved one.
    fn subscription(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Stores the subscriber's position. Unless `force`, it never moves backwards: a lower
    /// position changes nothing, and the stored one comes back as the error value.
    fn save_subscription(
        &self,
        name: &str,
        position: u64,
        force: bool,
    ) -> impl Future<Output = Result<Result<(), u64>, StoreError>> + Send;
}
