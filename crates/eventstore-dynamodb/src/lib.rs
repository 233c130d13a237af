//! The DynamoDB adapter of the event store: the only crate that speaks the AWS SDK.
//!
//! - [`DynamoEventLog`] implements the core's `EventLog` and `SnapshotStore` ports on one
//!   events table; [`keys`] builds every key of every table;
//! - [`projections`] implements the core's `ProjectionStore` (rows and checkpoints, one
//!   transaction per commit); [`Projector`] is the core's engine on it;
//! - [`sequencer`] gives events their global positions (a pure planner and its I/O);
//! - [`trigger`] turns Lambda invocations into calls of both, and stands in for Lambda's
//!   stream polling locally;
//! - [`compose`] builds all of it from the environment, once, for every entry point.
//!
//! The SDK picks its endpoint from the standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`), so DynamoDB Local or any other local endpoint needs no code.
#![forbid(unsafe_code)]

pub mod compose;
mod error;
pub mod health;
mod io;
mod item;
pub mod keys;
mod log;
pub mod metrics;
pub mod projections;
mod publisher;
mod schema;
pub mod sequencer;
mod snapshots;
pub mod trigger;
pub mod xray;

pub use compose::{
    client_from_env, endpoint_description, Components, Config, PublishSettings,
    DEFAULT_CHECKPOINTS_TABLE, DEFAULT_EVENTS_TABLE, DEFAULT_PROJECTIONS_TABLE,
};
pub use log::DynamoEventLog;
pub use projections::{projector, DynamoProjectionStore, ProjectionTables, Projector};
pub use publisher::DynamoPublisherStore;
pub use schema::{
    create_events_table, create_key_value_table, events_table_shape, key_value_table_key,
    IndexShape, TableShape,
};
pub use sequencer::{Images, SequenceReport, Sequencer, StreamHint, SweepReport};
pub use trigger::{DynamoPublisher, ProjectorTrigger, PublisherTrigger};

pub use aws_sdk_dynamodb::Client;
