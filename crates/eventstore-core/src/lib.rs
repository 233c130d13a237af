//! The event store's domain: names, events, expected versions, limits, errors, and the
//! append/read semantics, written against the narrow [`EventLog`] port.
//!
//! Nothing here knows about AWS. The DynamoDB adapter (`eventstore-dynamodb`) implements
//! [`EventLog`] and [`SnapshotStore`]; with the `test-util` feature, `memory::InMemoryLog`
//! implements them in memory and `testkit` tests aggregates given/when/then.
//!
//! Apps build on [`Aggregate`] (pure domain logic) and [`Repository`] (load from snapshot and
//! events, save with optimistic concurrency, retry on conflict), with [`Upcasters`] bringing
//! old event schemas up to date on read. Read models are [`Projection`]s, kept by the
//! [`ProjectionEngine`] over the [`ProjectionStore`] port (DynamoDB in the adapter,
//! `memory::InMemoryProjections` in memory); an app hands its projections and upcasters to
//! every entry point as one [`Registry`].
#![forbid(unsafe_code)]

pub mod aggregate;
mod error;
mod event;
pub mod limits;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
mod names;
mod port;
pub mod projection;
pub mod publish;
mod registry;
pub mod snapshot;
mod store;
pub mod subscription;
#[cfg(feature = "test-util")]
pub mod testkit;
pub mod upcast;
mod version;

pub use error::{StoreError, ValidationError};
pub use event::{AppendBatch, EventData, Metadata, NewEvent, RecordedEvent, Timestamp};
pub use names::{Category, EventType, StreamId};
pub use port::{EventLog, GlobalFilter, IndexEnd, IndexPage, LogPage, StreamTail, WriteConflict};
pub use store::{
    AppendOutcome, Direction, EventStore, GlobalPage, StreamInfo, StreamPage, StreamRead,
    INDEX_LAG_WAITS, MAX_READ_WAIT, READ_WAIT_POLL,
};
pub use version::ExpectedVersion;

pub use aggregate::{
    Aggregate, CommandContext, CommandError, DomainEvent, Executed, Loaded, Repository, SaveError,
    SnapshotMode,
};
pub use projection::{
    builtin, Checkpoint, NoProjections, Pass, ProjectReport, Projection, ProjectionEngine,
    ProjectionStore, RowId, Rows, SubscriptionStore,
};
pub use registry::Registry;
pub use snapshot::{Snapshot, SnapshotStore, SnapshotWrite, StateEvent, StatePage, StateTail};
pub use subscription::Subscription;
pub use upcast::Upcasters;

// The Rust examples of the guides are compiled and run as doctests, so they cannot drift
// from the code.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/library.md")]
pub struct LibraryGuide;
#[cfg(doctest)]
#[doc = include_str!("../../../docs/projections.md")]
pub struct ProjectionsGuide;
