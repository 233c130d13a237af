//! The event store's domain: names, events, expected versions, limits, errors, and the
//! append/read semantics, written against the narrow [`EventLog`] port.
//!
//! Nothing here knows about AWS. The DynamoDB adapter (`eventstore-dynamodb`) implements
//! [`EventLog`]; [`memory::InMemoryLog`] implements it in memory for unit tests and examples.
#![forbid(unsafe_code)]

mod error;
mod event;
pub mod limits;
pub mod memory;
mod names;
mod port;
mod store;
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
