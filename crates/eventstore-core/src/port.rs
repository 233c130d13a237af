//! The storage port: the few primitives the store's semantics need from a database.

use std::future::Future;

use uuid::Uuid;

use crate::snapshot::{StateEvent, StatePage};
use crate::{Category, EventType, NewEvent, RecordedEvent, StoreError, StreamId, Timestamp};

/// The head of a stream, read consistently.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamTail {
    /// Version of the last event; 0 when the stream has none.
    pub version: u64,
    /// Ids of the last events (as many as were asked for, or fewer), oldest first.
    pub last_ids: Vec<Uuid>,
}

/// Why a conditional write stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteConflict {
    /// One of the target versions already holds an event.
    VersionTaken,
    /// The write required the version before `first` to exist, and it does not.
    PreviousMissing,
}

/// Which events a global-order read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalFilter {
    All,
    EventType(EventType),
    Category(Category),
}

impl GlobalFilter {
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        match self {
            Self::All => true,
            Self::EventType(t) => &event.event_type == t,
            Self::Category(c) => &event.stream_id.category() == c,
        }
    }
}

/// A page read from storage, and whether storage holds more in that direction.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub events: Vec<RecordedEvent>,
    pub more: bool,
}

/// A stretch of the global order, from a read's `from`, as the index shows it now.
///
/// Positions are dense (every position up to the last handed out holds exactly one
/// event), so a read can tell a position the index does not show yet from one that does not
/// exist: the stretch is the run of positions the index shows without a gap, and a reader
/// that continues from `next` never skips an event, whatever it filters on.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPage {
    /// The events of the filter in the stretch, in position order.
    pub events: Vec<RecordedEvent>,
    /// The first position not covered: every position from `from` below it was shown,
    /// and is either in `events` or not of the filter.
    pub next: u64,
    /// Why the stretch ends at `next`.
    pub end: IndexEnd,
}

/// Why a stretch of the global order ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexEnd {
    /// The page is full (its limit of events or bytes, or the positions one read may pass
    /// over); more can be read at once from `next`.
    Full,
    /// The index shows a position after `next` but not `next` itself: it lags, and shows
    /// `next` soon.
    Hole,
    /// The index shows nothing at `next` or after.
    End,
}

/// What the event store needs from a database. Implemented by the DynamoDB adapter and by
/// [`crate::memory::InMemoryLog`].
pub trait EventLog: Send + Sync {
    /// The stream's current version and the ids of its last `ids` events, read consistently.
    fn tail(
        &self,
        stream: &StreamId,
        ids: usize,
    ) -> impl Future<Output = Result<StreamTail, StoreError>> + Send;

    /// Stores `events` at versions `first`, `first + 1`, ... all or none, each only where
    /// no event is stored yet. With `require_previous`, also only if version `first - 1`
    /// holds an event, so that an append can never leave a gap.
    fn write(
        &self,
        stream: &StreamId,
        first: u64,
        events: &[NewEvent],
        created_at: Timestamp,
        require_previous: bool,
    ) -> impl Future<Output = Result<Result<(), WriteConflict>, StoreError>> + Send;

    /// The ids stored at versions `from..=to`, in version order, read consistently.
    fn event_ids(
        &self,
        stream: &StreamId,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<(u64, Uuid)>, StoreError>> + Send;

    /// Up to `limit` events from version `from` (inclusive) in the given direction, read
    /// consistently, stopping early once `max_bytes` of payload are gathered.
    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        backward: bool,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<LogPage, StoreError>> + Send;

    /// [`read_stream`](Self::read_stream) forward, of only what folding an aggregate's
    /// state needs: a store can read fewer attributes (the DynamoDB adapter projects them).
    fn read_stream_state(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<StatePage, StoreError>> + Send {
        async move {
            let page = self
                .read_stream(stream, from, false, limit, max_bytes)
                .await?;
            Ok(StatePage {
                events: page.events.into_iter().map(StateEvent::from).collect(),
                more: page.more,
            })
        }
    }

    /// The events of `filter` from global position `from`, in position order, up to the
    /// first position the global-order index does not show: at most `limit` events, at
    /// least one (if there is one) even when it is over `max_bytes`, and no more once
    /// `max_bytes` of payload are gathered. Indexes lag, so the stretch may end at a hole;
    /// see [`IndexPage`].
    fn read_index(
        &self,
        filter: &GlobalFilter,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<IndexPage, StoreError>> + Send;

    /// The last global position handed out, read consistently; 0 when none is.
    fn last_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
