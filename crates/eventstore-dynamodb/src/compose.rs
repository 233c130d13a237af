//! The composition root: configuration from the environment, the SDK client, the event log,
//! the sequencer and the projector, built once per process and the same way for every
//! entry point (the Lambda functions, the local server, the CLI, the example).

use aws_sdk_dynamodb::Client;
use eventstore_core::publish::{EventBus, Publisher, PublisherConfig};
use eventstore_core::{
    Category, EventStore, EventType, GlobalFilter, Registry, StoreError, Subscription,
};

use crate::log::DynamoEventLog;
use crate::projections::{projector, DynamoProjectionStore, ProjectionTables, Projector};
use crate::publisher::DynamoPublisherStore;
use crate::schema::create_key_value_table;
use crate::sequencer::Sequencer;
use crate::trigger::{DynamoPublisher, FailedBatches};

/// Table name used when `EVENTS_TABLE` is unset (local development).
pub const DEFAULT_EVENTS_TABLE: &str = "eventstore-events";
/// Table name used when `PROJECTIONS_TABLE` is unset (local development).
pub const DEFAULT_PROJECTIONS_TABLE: &str = "eventstore-projections";
/// Table name used when `CHECKPOINTS_TABLE` is unset (local development).
pub const DEFAULT_CHECKPOINTS_TABLE: &str = "eventstore-checkpoints";
/// The variable naming the sequencer's failed-batch queue (the template sets it).
pub const SEQUENCER_FAILURES_QUEUE_URL: &str = "SEQUENCER_FAILURES_QUEUE_URL";
/// The queue `make dev` creates in the local SQS when that variable is unset.
pub const LOCAL_SEQUENCER_FAILURES_QUEUE: &str = "eventstore-sequencer-failures";

/// Configuration read once at start-up from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `EVENTS_TABLE`, default [`DEFAULT_EVENTS_TABLE`].
    pub events_table: String,
    /// `PROJECTIONS_TABLE` and `CHECKPOINTS_TABLE`.
    pub projection_tables: ProjectionTables,
    /// `SEQUENCER_FAILURES_QUEUE_URL`: the queue where the sequencer's event source records
    /// the batches it gives up on, which the sweep replays. Unset: the sweep only settles.
    pub sequencer_failures_queue: Option<String>,
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
            sequencer_failures_queue: std::env::var(SEQUENCER_FAILURES_QUEUE_URL)
                .ok()
                .filter(|q| !q.is_empty()),
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

/// What the publisher publishes, from the environment the template sets:
/// `EVENT_BUS_NAME` (the bus; unset, there is no publisher), `PUBLISH_FILTER` (`all`,
/// `type:<event type>` or `category:<category>`; default `all`), `PUBLISH_SOURCE` (the
/// entries' `source`, default `eventstore`) and `PUBLISHER_NAME` (its checkpoint's name,
/// default `eventbridge`).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishSettings {
    pub bus: String,
    pub config: PublisherConfig,
}

impl PublishSettings {
    pub fn from_env() -> Result<Option<Self>, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let set = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(bus) = set("EVENT_BUS_NAME") else {
            return Ok(None);
        };
        let filter = match set("PUBLISH_FILTER").as_deref() {
            None | Some("all") => GlobalFilter::All,
            Some(other) => match other.split_once(':') {
                Some(("type", t)) => GlobalFilter::EventType(
                    EventType::parse(t, "PUBLISH_FILTER").map_err(|e| e.to_string())?,
                ),
                Some(("category", c)) => GlobalFilter::Category(
                    Category::parse(c, "PUBLISH_FILTER").map_err(|e| e.to_string())?,
                ),
                _ => {
                    return Err(format!(
                        "PUBLISH_FILTER must be all, type:<event type> or category:<category>, got {other:?}"
                    ))
                }
            },
        };
        let source = set("PUBLISH_SOURCE").unwrap_or_else(|| "eventstore".to_owned());
        let name = set("PUBLISHER_NAME").unwrap_or_else(|| "eventbridge".to_owned());
        Ok(Some(Self {
            bus,
            config: PublisherConfig::new(name, source, filter),
        }))
    }
}

/// Everything an entry point needs, built from one configuration, one client and the app's
/// [`Registry`] (its projections and upcasters).
#[derive(Debug, Clone)]
pub struct Components {
    pub config: Config,
    pub log: DynamoEventLog,
    pub registry: Registry,
    /// The sequencer's failed-batch queue, when configured.
    pub failed_batches: Option<FailedBatches>,
}

impl Components {
    /// Reads the configuration and builds the SDK client: once per process.
    pub async fn from_env(registry: Registry) -> Self {
        let config = Config::from_env();
        let failed = match &config.sequencer_failures_queue {
            Some(queue) => Some(FailedBatches::from_env(queue.clone()).await),
            None => None,
        };
        Self::new(config, client_from_env().await, registry).with_failed_batches(failed)
    }

    #[must_use]
    pub fn with_failed_batches(mut self, failed: Option<FailedBatches>) -> Self {
        self.failed_batches = failed;
        self
    }

    pub fn new(config: Config, client: Client, registry: Registry) -> Self {
        let log = DynamoEventLog::new(client, config.events_table.clone());
        Self {
            config,
            log,
            registry,
            failed_batches: None,
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
        Sequencer::new(self.log.clone()).with_failed_batches(self.failed_batches.clone())
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

    /// The publisher of the global order to `bus`, its checkpoint in the checkpoints table.
    pub fn publisher<B: EventBus>(&self, bus: B, config: PublisherConfig) -> DynamoPublisher<B> {
        let checkpoints = DynamoPublisherStore::new(
            self.log.client.clone(),
            self.config.projection_tables.checkpoints.clone(),
        );
        Publisher::new(self.store(), bus, checkpoints, config)
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

    /// For local use (`make dev`): with no `SEQUENCER_FAILURES_QUEUE_URL`, creates
    /// [`LOCAL_SEQUENCER_FAILURES_QUEUE`] in the SQS the SDK's variables name (it may exist)
    /// and uses it, so that the local event source records the batches it gives up on and
    /// the local sweep replays them, as on AWS.
    pub async fn create_local_failure_queue(&mut self) -> Result<(), StoreError> {
        if self.failed_batches.is_some() {
            return Ok(());
        }
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let url = sqs
            .create_queue()
            .queue_name(LOCAL_SEQUENCER_FAILURES_QUEUE)
            .send()
            .await
            .map_err(|e| crate::error::from_sdk("CreateQueue", e))?
            .queue_url
            .ok_or_else(|| StoreError::corrupt("CreateQueue returned no queue URL"))?;
        self.failed_batches = Some(FailedBatches::new(
            sqs,
            url,
            crate::trigger::local::streams_client(&config),
        ));
        Ok(())
    }
}
