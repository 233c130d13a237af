//! The composition root: configuration from the environment, the SDK client, the event log,
//! the sequencer and the projector, built once per process and the same way for every
//! entry point (the Lambda functions, the local server, the CLI, the example).

use aws_sdk_dynamodb::Client;
use eventstore_core::{EventStore, Registry, StoreError, Subscription};

use crate::log::DynamoEventLog;
use crate::projections::{projector, DynamoProjectionStore, ProjectionTables, Projector};
use crate::schema::create_key_value_table;
use crate::sequencer::Sequencer;

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

/// Everything an entry point needs, built from one configuration, one client and the app's
/// [`Registry`] (its projections and upcasters).
#[derive(Debug, Clone)]
pub struct Components {
    pub config: Config,
    pub log: DynamoEventLog,
    pub registry: Registry,
}

impl Components {
    /// Reads the configuration and builds the SDK client: once per process.
    pub async fn from_env(registry: Registry) -> Self {
        Self::new(Config::from_env(), client_from_env().await, registry)
    }

    pub fn new(config: Config, client: Client, registry: Registry) -> Self {
        let log = DynamoEventLog::new(client, config.events_table.clone());
        Self {
            config,
            log,
            registry,
        }
    }

    pub fn client(&self) -> &Client {
        &self.log.client
    }

    /// The event store over the events table.
    pub fn store(&self) -> EventStore<DynamoEventLog> {
        EventStore::new(self.log.clone())
    }

    pub fn sequencer(&self) -> Sequencer {
        Sequencer::new(self.log.clone())
    }

    /// The projection engine with the registry's projections and upcasters.
    pub fn projector(&self) -> Projector {
        projector(
            self.log.clone(),
            self.config.projection_tables.clone(),
            self.registry.projections.clone(),
        )
        .with_upcasters(self.registry.upcasters.clone())
    }

    /// The subscription checkpoints the `/subscriptions/{name}` routes serve (the
    /// checkpoints table), for library subscribers.
    pub fn subscriptions(&self) -> DynamoProjectionStore {
        DynamoProjectionStore::new(
            self.log.client.clone(),
            self.config.projection_tables.clone(),
        )
    }

    /// A catch-up subscription `name` on the store, with its checkpoint in the checkpoints
    /// table (the same one `GET /subscriptions/{name}` shows).
    pub fn subscription(&self, name: &str) -> Subscription<DynamoEventLog, DynamoProjectionStore> {
        Subscription::new(self.store(), self.subscriptions(), name)
    }

    /// Creates the events, rows and checkpoints tables where they do not exist (local use:
    /// on AWS the stack creates them).
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        self.log.create_table().await?;
        let tables = &self.config.projection_tables;
        for table in [&tables.rows, &tables.checkpoints] {
            create_key_value_table(self.client(), table).await?;
        }
        Ok(())
    }
}
