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
mod schema;
pub mod sequencer;
mod snapshots;

pub use log::DynamoEventLog;
pub use schema::{create_events_table, events_table_shape, IndexShape, TableShape};
pub use sequencer::{SequenceReport, Sequencer, StreamHint};

pub use aws_sdk_dynamodb::Client;

/// Table name used when `EVENTS_TABLE` is unset (local development).
pub const DEFAULT_EVENTS_TABLE: &str = "eventstore-events";

/// Configuration read once at start-up from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `EVENTS_TABLE`, default [`DEFAULT_EVENTS_TABLE`].
    pub events_table: String,
}

impl Config {
    pub fn from_env() -> Self {
        Self {
            events_table: std::env::var("EVENTS_TABLE")
                .ok()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| DEFAULT_EVENTS_TABLE.to_owned()),
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
