//! Publishing the global order to an event bus (EventBridge on AWS), at least once, in
//! global order, never skipping: the [`Publisher`] reads from its own checkpoint, sends
//! the events in the bus's batches, retries only the entries the bus failed, parks the ones
//! it can never take, and only then moves its checkpoint. The bus and the checkpoint store
//! are ports ([`EventBus`], [`PublisherStore`]); `memory` (feature `test-util`) has fakes of
//! both.

mod engine;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
#[cfg(test)]
mod tests;

use std::future::Future;

use serde::Serialize;
use uuid::Uuid;

use crate::StoreError;

pub use engine::{PublishFailed, PublishReport, Publisher, PublisherConfig};

/// One event as the bus receives it. EventBridge: `Source`, `DetailType`, `Detail`,
/// `Resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    /// The event's global position: the order the entries are sent in.
    pub position: u64,
    pub event_id: Uuid,
    pub source: String,
    /// The event type.
    pub detail_type: String,
    /// The event as the API returns it (JSON), with its `eventId` for deduplication.
    pub detail: String,
    /// The stream the event belongs to, as `<source>:stream/<stream id>`.
    pub resources: Vec<String>,
    /// The stream id itself (not sent; for parking).
    pub stream_id: String,
}

impl BusEntry {
    /// The entry's size as EventBridge counts it against its 256 KB limit: the UTF-8 bytes
    /// of source, detail type, detail and every resource (no `Time` is sent).
    pub fn size(&self) -> usize {
        self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

/// What the bus did with one entry of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Published,
    /// Not published this time (throttled, an internal failure); sent again.
    Failed {
        code: String,
    },
    /// Never to be published (EventBridge's `InvalidArgument`, `MalformedDetail`, an
    /// unauthorized source, ...): parked, so that the events after it go on.
    Refused {
        code: String,
    },
}

/// The bus's limits on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusLimits {
    pub entries: usize,
    pub bytes: usize,
}

/// EventBridge's `PutEvents`: 10 entries and 256 KB (262,144 bytes) per request, and per
/// entry.
pub const EVENTBRIDGE_LIMITS: BusLimits = BusLimits {
    entries: 10,
    bytes: 256 * 1024,
};

/// An event bus: the only thing the publisher needs from EventBridge.
pub trait EventBus: Send + Sync {
    fn limits(&self) -> BusLimits;

    /// Sends `entries` (within [`EventBus::limits`]) in one request; one outcome per entry,
    /// in order. `Err` when the request as a whole failed: nothing is known to be published.
    fn put(
        &self,
        entries: &[BusEntry],
    ) -> impl Future<Output = Result<Vec<EntryOutcome>, StoreError>> + Send;
}

/// An event the bus can never take (over its entry size limit, or refused for good):
/// recorded instead of sent, and counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedEntry {
    pub position: u64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub event_type: String,
    pub reason: String,
}

/// Where a publisher keeps its checkpoint and its parked events.
pub trait PublisherStore: Send + Sync {
    /// The next position to publish (1 when none is stored).
    fn checkpoint(&self, publisher: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records `parked`, then moves the checkpoint from `from` to `to`, only if it is still
    /// at `from`. `Ok(false)` when another run moved it first (what this run sent is then a
    /// duplicate, which at-least-once delivery allows).
    fn advance(
        &self,
        publisher: &str,
        from: u64,
        to: u64,
        parked: &[ParkedEntry],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The parked events, oldest first.
    fn parked(
        &self,
        publisher: &str,
    ) -> impl Future<Output = Result<Vec<ParkedEntry>, StoreError>> + Send;
}
