//! The DynamoDB adapter of the event store: the only crate that speaks the AWS SDK.
//!
//! [`DynamoEventLog`] implements the core's [`EventLog`] port on one events table (layout in
//! [`keys`]). The SDK picks its endpoint from the standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`), so DynamoDB Local or any other local endpoint needs no code.
#![forbid(unsafe_code)]

mod error;
pub mod event_source;
mod item;
pub mod keys;
mod log;
pub mod metrics;
pub mod projector;
mod schema;
pub mod sequencer;
mod snapshots;

pub use log::DynamoEventLog;
pub use projector::{ProjectReport, ProjectionTables, Projector};
pub use schema::{
    create_events_table, create_key_value_table, events_table_shape, key_value_table_key,
    IndexShape, TableShape,
};
pub use sequencer::{SequenceReport, Sequencer, StreamHint, SweepReport};

pub use aws_sdk_dynamodb::Client;

/// Table name used when `EVENTS_TABLE` is unset (local development).
pub const DEFAULT_EVENTS_TABLE: &str = "eventstore-events";

/// Table name used when `PROJECTIONS_TABLE` is unset (local development).
pub const DEFAULT_PROJECTIONS_TABLE: &str = "eventstore-projections";
/// Table name used when `CHECKPOINTS_TABLE` is unset (local development).
pub const DEFAULT_CHECKPOINTS_TABLE: &str = "eventstore-checkpoints";

/// Configuration read once at start-up from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `EVENTS_TABLE`, default [`DEFAULT_EVENTS_TABLE`].
    pub events_table: String,
    /// `PROJECTIONS_TABLE` and `CHECKPOINTS_TABLE`.
    pub projection_tables: ProjectionTables,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Config {
    pub fn from_env() -> Self {
        Self {
            events_table: env_or("EVENTS_TABLE", DEFAULT_EVENTS_TABLE),
            projection_tables: ProjectionTables {
                rows: env_or("PROJECTIONS_TABLE", DEFAULT_PROJECTIONS_TABLE),
                checkpoints: env_or("CHECKPOINTS_TABLE", DEFAULT_CHECKPOINTS_TABLE),
            },
        }
    }
}

/// A DynamoDB client from the SDK's default chain: region, credentials, endpoint overrides
/// and the standard retry mode (3 attempts, exponential backoff with jitter).
pub async fn client_from_env() -> Client {
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&sdk_config)
}

/// The endpoint the SDK will use, for start-up logs: the override if one is set.
pub fn endpoint_description() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| "AWS DynamoDB (regional endpoint)".to_owned())
}
