//! A local stand-in for Lambda's DynamoDB Streams event source mapping, for `make dev` and
//! the tests. On AWS, Lambda polls the stream; locally nothing does, so this module does what
//! the mapping in `infra/template.yaml` does, with the same handler:
//!
//! * it reads every shard of the table's stream from the trim horizon, a child shard only
//!   after its parent is finished;
//! * it drops records that the mapping's filter pattern rejects;
//! * it hands the rest, in batches, to the handler as the `aws_lambda_events` DynamoDB event
//!   that Lambda would deliver (built from the same JSON shape);
//! * it honours `batchItemFailures`: the batch is retried from the first failed record, and
//!   after `max_retries` the records are skipped and, as the mapping does, a record of the
//!   batch (shard and sequence numbers) goes to the on-failure queue if it has one
//!   ([`LocalEventSource::on_failure`]).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use eventstore_core::StoreError;
use serde_json::{json, Value};

use super::failed::{BatchInfo, FailedBatch, FailedBatches};
use super::filter::FilterPattern;
use crate::error::from_sdk;
use crate::log::DynamoEventLog;

/// The sequencer's BatchSize in the template: up to one claim's worth of records.
pub const SEQUENCER_BATCH_SIZE: i32 = 1000;

/// How the local event source delivers records; the defaults follow the template.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub batch_size: i32,
    /// Retries of a failing batch before its records are skipped.
    pub max_retries: u32,
    /// Wait between polls of a shard that had no new records.
    pub idle_wait: Duration,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            // The projector's and the publisher's BatchSize; the sequencer's is larger
            // (`SEQUENCER_BATCH_SIZE`).
            batch_size: 100,
            max_retries: 5,
            idle_wait: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Default)]
struct ShardState {
    iterator: Option<String>,
    finished: bool,
}

/// Polls one table's stream and feeds a handler.
#[derive(Debug)]
pub struct LocalEventSource {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    filter: FilterPattern,
    settings: SourceSettings,
    shards: HashMap<String, ShardState>,
    on_failure: Option<FailedBatches>,
}

/// A streams client from the SDK's default chain. `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` or
/// `AWS_ENDPOINT_URL` chooses its endpoint; if only `AWS_ENDPOINT_URL_DYNAMODB` is set, the
/// streams API is assumed to be served there too, as DynamoDB Local does.
pub async fn streams_client_from_env() -> aws_sdk_dynamodbstreams::Client {
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    streams_client(&sdk_config)
}

/// [`streams_client_from_env`] from an SDK configuration already loaded.
pub fn streams_client(sdk_config: &aws_config::SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(sdk_config);
    let own = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if own("AWS_ENDPOINT_URL_DYNAMODB_STREAMS").is_none() && own("AWS_ENDPOINT_URL").is_none() {
        if let Some(url) = own("AWS_ENDPOINT_URL_DYNAMODB") {
            builder = builder.endpoint_url(url);
        }
    }
    aws_sdk_dynamodbstreams::Client::from_conf(builder.build())
}

impl LocalEventSource {
    pub fn new(
        client: aws_sdk_dynamodbstreams::Client,
        stream_arn: impl Into<String>,
        filter: FilterPattern,
        settings: SourceSettings,
    ) -> Self {
        Self {
            client,
            stream_arn: stream_arn.into(),
            filter,
            settings,
            shards: HashMap::new(),
            on_failure: None,
        }
    }

    /// Sends a record of each batch it gives up on to `queue`, as the template's
    /// `DestinationConfig.OnFailure` does.
    #[must_use]
    pub fn on_failure(mut self, queue: Option<FailedBatches>) -> Self {
        self.on_failure = queue;
        self
    }

    /// A source over `log`'s table stream that passes what `pattern` (a filter of the
    /// template's) lets through, with the template's batch size and retries.
    pub async fn for_table(log: &DynamoEventLog, pattern: &str) -> Result<Self, StoreError> {
        Self::for_table_with(log, pattern, SourceSettings::default()).await
    }

    /// [`LocalEventSource::for_table`] with other settings.
    pub async fn for_table_with(
        log: &DynamoEventLog,
        pattern: &str,
        settings: SourceSettings,
    ) -> Result<Self, StoreError> {
        let filter = FilterPattern::parse(pattern).map_err(StoreError::corrupt)?;
        Ok(Self::new(
            streams_client_from_env().await,
            log.stream_arn().await?,
            filter,
            settings,
        ))
    }

    /// Polls forever, as the event source mapping does.
    pub async fn run<H, F, E>(mut self, handler: H) -> Result<(), StoreError>
    where
        H: Fn(Event) -> F,
        F: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
    {
        loop {
            if self.drain(&handler).await? == 0 {
                tokio::time::sleep(self.settings.idle_wait).await;
            }
        }
    }

    /// Delivers every record the stream holds now that this source has not delivered yet,
    /// and returns how many records it read (filtered out ones included).
    pub async fn drain<H, F, E>(&mut self, handler: &H) -> Result<usize, StoreError>
    where
        H: Fn(Event) -> F,
        F: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
    {
        let shards = self.list_shards().await?;
        let mut read = 0;
        for (shard, parent) in &shards {
            // Records of one item stay in order only if a parent shard is read to its end
            // before its children.
            let parent_open = parent.as_ref().is_some_and(|p| {
                shards.iter().any(|(id, _)| id == p)
                    && !self.shards.get(p).is_some_and(|s| s.finished)
            });
            if parent_open || self.shards.get(shard).is_some_and(|s| s.finished) {
                continue;
            }
            read += self.drain_shard(shard, handler).await?;
        }
        Ok(read)
    }

    async fn list_shards(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("DescribeStream", e))?;
            let Some(description) = out.stream_description else {
                return Ok(shards);
            };
            for shard in description.shards() {
                if let Some(id) = shard.shard_id() {
                    shards.push((id.to_owned(), shard.parent_shard_id().map(str::to_owned)));
                }
            }
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(shards),
            }
        }
    }

    async fn drain_shard<H, F, E>(&mut self, shard: &str, handler: &H) -> Result<usize, StoreError>
    where
        H: Fn(Event) -> F,
        F: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
    {
        let mut iterator = match self.shards.get(shard).and_then(|s| s.iterator.clone()) {
            Some(it) => it,
            None => self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| from_sdk("GetShardIterator", e))?
                .shard_iterator
                .ok_or_else(|| StoreError::corrupt("GetShardIterator returned no iterator"))?,
        };
        let mut read = 0;
        loop {
            let out = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(self.settings.batch_size)
                .send()
                .await
                .map_err(|e| from_sdk("GetRecords", e))?;
            let records = out.records.unwrap_or_default();
            read += records.len();
            let batch: Vec<Value> = records
                .iter()
                .map(|r| lambda_record(r, &self.stream_arn))
                .filter(|r| self.filter.matches(r))
                .collect();
            if !batch.is_empty() {
                self.deliver(shard, batch, handler).await?;
            }
            let state = self.shards.entry(shard.to_owned()).or_default();
            match out.next_shard_iterator {
                Some(next) => {
                    state.iterator = Some(next.clone());
                    iterator = next;
                }
                None => {
                    state.finished = true;
                    return Ok(read);
                }
            }
            if records.is_empty() {
                return Ok(read);
            }
        }
    }

    async fn deliver<H, F, E>(
        &self,
        shard: &str,
        mut batch: Vec<Value>,
        handler: &H,
    ) -> Result<(), StoreError>
    where
        H: Fn(Event) -> F,
        F: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
    {
        let mut attempt = 0;
        loop {
            let event: Event = serde_json::from_value(json!({ "Records": batch }))
                .map_err(|e| StoreError::internal("building a DynamoDB stream event", e))?;
            let failed_from = match handler(event).await {
                Ok(response) => match response.batch_item_failures.first() {
                    None => return Ok(()),
                    Some(failure) => {
                        let id = failure.item_identifier.as_deref();
                        // An unknown identifier fails the whole batch, as Lambda does.
                        batch
                            .iter()
                            .position(|r| sequence_number(r) == id)
                            .unwrap_or(0)
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "handler failed; retrying the whole batch");
                    0
                }
            };
            batch.drain(..failed_from);
            attempt += 1;
            if attempt > self.settings.max_retries {
                tracing::error!(
                    records = batch.len(),
                    first = ?batch.first().and_then(sequence_number),
                    "giving up on records after retries"
                );
                if let Some(queue) = &self.on_failure {
                    queue
                        .send(&self.failure_record(shard, &batch, attempt))
                        .await?;
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50u64 << attempt.min(5))).await;
        }
    }
}

impl LocalEventSource {
    /// The record of a batch given up on, as the event source mapping writes it.
    fn failure_record(&self, shard: &str, batch: &[Value], attempts: u32) -> FailedBatch {
        let number = |r: Option<&Value>| r.and_then(sequence_number).unwrap_or_default().to_owned();
        FailedBatch {
            batch: BatchInfo {
                shard_id: shard.to_owned(),
                start_sequence_number: number(batch.first()),
                end_sequence_number: number(batch.last()),
                // Only for people reading the message; the local stream's are not kept.
                approximate_arrival_of_first_record: None,
                approximate_arrival_of_last_record: None,
                batch_size: u32::try_from(batch.len()).unwrap_or(u32::MAX),
                stream_arn: self.stream_arn.clone(),
            },
            request_context: json!({
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            }),
            timestamp: Some(eventstore_core::Timestamp::now().to_string()),
        }
    }
}

/// What the local event source can feed: the sequencer and the projector.
pub trait StreamConsumer: Send + Sync {
    /// A source over the table's stream with this consumer's filter.
    fn local_source(&self) -> impl Future<Output = Result<LocalEventSource, StoreError>> + Send;

    /// The same handler the consumer's Lambda function runs.
    fn handle(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<DynamoDbEventResponse, StoreError>> + Send;
}

/// Feeds `consumer` from its local source for as long as the process lives, starting over
/// a second after any failure (say the DynamoDB endpoint went away).
pub async fn run_locally<C: StreamConsumer>(consumer: C, name: &str) {
    loop {
        let result = match consumer.local_source().await {
            Ok(source) => source.run(|event| consumer.handle(event)).await,
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            tracing::warn!(consumer = name, error = %err, "local event source stopped; restarting in 1 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn sequence_number(record: &Value) -> Option<&str> {
    record.get("dynamodb")?.get("SequenceNumber")?.as_str()
}

fn image(map: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>) -> Value {
    map.map(|m| {
        let item: serde_dynamo::Item = m.clone().into();
        serde_json::to_value(item).unwrap_or(Value::Null)
    })
    .unwrap_or(Value::Null)
}

/// A stream record in the JSON shape of a Lambda DynamoDB event record.
pub(crate) fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let change = record.dynamodb();
    let mut dynamodb = json!({
        "Keys": image(change.and_then(|c| c.keys())),
        "SequenceNumber": change.and_then(|c| c.sequence_number()),
        "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or(0),
        "StreamViewType": change.and_then(|c| c.stream_view_type()).map(|v| v.as_str()),
    });
    if let Some(created) = change.and_then(|c| c.approximate_creation_date_time()) {
        dynamodb["ApproximateCreationDateTime"] = json!(created.as_secs_f64());
    }
    for (field, map) in [
        ("NewImage", change.and_then(|c| c.new_image())),
        ("OldImage", change.and_then(|c| c.old_image())),
    ] {
        if map.is_some() {
            dynamodb[field] = image(map);
        }
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": record.event_source().unwrap_or("aws:dynamodb"),
        "awsRegion": record.aws_region().unwrap_or_default(),
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    })
}
