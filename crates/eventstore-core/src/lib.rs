//! The event store's domain: names, events, expected versions, limits, errors, and the
//! append/read semantics, written against the narrow [`EventLog`] port.
//!
//! Nothing here knows about AWS. The DynamoDB adapter (`eventstore-dynamodb`) implements
//! [`EventLog`] and [`SnapshotStore`]; with the `test-util` feature, `memory::InMemoryLog`
//! implements them in memory and `testkit` tests aggregates given/when/then.
//!
//! Apps build on [`Aggregate`] (pure domain logic) and [`Repository`] (load from snapshot and
//! events, save with optimistic concurrency, retry on conflict), with [`Upcasters`] bringing
//! old event schemas up to date on read.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod builtin;
mod error;
mod event;
pub mod limits;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
mod names;
mod port;
pub mod projection;
pub mod snapshot;
mod store;
#[cfg(feature = "test-util")]
pub mod testkit;
pub mod upcast;
mod version;

pub use error::{StoreError, ValidationError};
pub use event::{AppendBatch, EventData, Metadata, NewEvent, RecordedEvent, Timestamp};
pub use names::{Category, EventType, StreamId};
pub use port::{
    EventLog, GlobalFilter, IndexPage, IndexedEvent, LogPage, StreamTail, WriteConflict,
};
pub use store::{
    AppendOutcome, Direction, EventStore, GlobalPage, StreamInfo, StreamPage, StreamRead,
    INDEX_LAG_WAITS,
};
pub use version::ExpectedVersion;

pub use aggregate::{
    Aggregate, CommandContext, CommandError, DomainEvent, Executed, Loaded, Repository, SaveError,
    SnapshotMode,
};
pub use projection::{Checkpoint, Projection, RowId, Rows};
pub use snapshot::{Snapshot, SnapshotStore, SnapshotWrite};
pub use upcast::Upcasters;
