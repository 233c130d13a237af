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

/// An event as a global-order index shows it, with its number in that index's dense
/// sequence: the global position for [`GlobalFilter::All`], the event's number among the
/// events of its type or category otherwise. Dense numbering is what lets a reader see
/// that the index has not shown an event yet.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedEvent {
    pub sequence: u64,
    pub event: RecordedEvent,
}

/// A page of a global-order index, and whether the index holds more.
#[derive(Debug, Clone, Default)]
pub struct IndexPage {
    pub entries: Vec<IndexedEvent>,
    pub more: bool,
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

    /// Up to `limit` events of `filter` with a global position of `from` or more, in
    /// position order, as its index shows them now. Indexes lag, so the page may have holes;
    /// the store hands out only the part it can prove has none.
    fn read_index(
        &self,
        filter: &GlobalFilter,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<IndexPage, StoreError>> + Send;

    /// The index sequence of the last event of `filter` before global position `before`, as
    /// its index shows it now; 0 when it shows none.
    fn sequence_before(
        &self,
        filter: &GlobalFilter,
        before: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The last global position handed out, read consistently; 0 when none is.
    fn last_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
