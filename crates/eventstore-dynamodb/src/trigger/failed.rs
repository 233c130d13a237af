//! Batches the stream path gave up on, and how the sweep replays them.
//!
//! When the sequencer fails a batch of stream records past its retries, the event source
//! mapping sends a record of the batch to its on-failure destination, the
//! `SequencerFailures` queue: the shard and the first and last sequence numbers, not the
//! records. The records stay in the table's stream for 24 hours. The sweep receives those
//! messages, reads the batch's records back from the stream, and sequences them as the
//! stream path would have; only then is a message deleted. A batch whose records are gone
//! from the stream cannot be replayed: it is counted in `UnreplayableBatches`, whose alarm
//! says to run `eventstore repair`, and its message stays for the operator to see.
//!
//! Locally, the event source sends the same record to the same kind of queue (moto's SQS).

use std::time::Instant;

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodbstreams::config::http::HttpResponse;
use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use eventstore_core::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filter::FilterPattern;
use super::local::lambda_record;
use super::sequencer::{hint_of, images_of, EVENT_INSERTS_FILTER};
use crate::error::from_sdk;
use crate::sequencer::{Sequencer, SweepReport, SWEEP_BUDGET};

/// How long a received message stays hidden from other receivers: longer than a sweep.
const VISIBILITY_SECONDS: i32 = 120;
/// Records one GetRecords call returns at most (DynamoDB Streams' own limit).
const RECORDS_PER_READ: i32 = 1000;
/// Empty reads in a row after which an open shard that has not reached the batch's last
/// record is given up on until the next sweep.
const EMPTY_READS: u32 = 10;

/// What the event source mapping sends its on-failure destination for a DynamoDB stream
/// batch it gave up on (see `tests/fixtures/dynamodb/sequencer-failure.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedBatch {
    #[serde(rename = "DDBStreamBatchInfo")]
    pub batch: BatchInfo,
    /// Why and when, as the mapping reports it; kept only for the log.
    #[serde(rename = "requestContext", default)]
    pub request_context: Value,
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_of_first_record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_of_last_record: Option<String>,
    pub batch_size: u32,
    pub stream_arn: String,
}

/// The `SequencerFailures` queue, and the stream its messages point into.
#[derive(Debug, Clone)]
pub struct FailedBatches {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    streams: aws_sdk_dynamodbstreams::Client,
}

/// Why a batch could not be replayed.
#[derive(Debug, thiserror::Error)]
enum ReplayError {
    /// The records are no longer in the stream (kept 24 hours), or the shard or stream is
    /// gone: only a Scan (`eventstore repair`) finds the batch's events now.
    #[error("its records are gone from the stream: {0}")]
    Gone(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FailedBatches {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        streams: aws_sdk_dynamodbstreams::Client,
    ) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
            streams,
        }
    }

    /// Clients from the SDK's default chain for the queue at `queue_url`.
    pub async fn from_env(queue_url: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(
            aws_sdk_sqs::Client::new(&config),
            queue_url,
            super::local::streams_client(&config),
        )
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Records a batch given up on, as the event source mapping does (the local source).
    pub async fn send(&self, failed: &FailedBatch) -> Result<(), StoreError> {
        let body = serde_json::to_string(failed)
            .map_err(|e| StoreError::internal("encoding a failed batch", e))?;
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| from_sdk("SendMessage", e))?;
        Ok(())
    }

    /// Reads the batch's records back from the stream, in the shape the Lambda event
    /// carries them, filtered as the sequencer's event source filters them. It reads until
    /// the batch's last record or the end of a closed shard; an open shard that keeps
    /// answering with nothing before the last record is an error, so the message stays
    /// and the next sweep reads again.
    async fn records(&self, batch: &BatchInfo) -> Result<Vec<Value>, ReplayError> {
        let filter = FilterPattern::parse(EVENT_INSERTS_FILTER).map_err(StoreError::corrupt)?;
        let iterator = self
            .streams
            .get_shard_iterator()
            .stream_arn(&batch.stream_arn)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&batch.start_sequence_number)
            .send()
            .await
            .map_err(|e| replay_error("GetShardIterator", e))?;
        let mut next = iterator.shard_iterator;
        let mut found = Vec::new();
        let mut empty = 0;
        while let Some(iterator) = next.take() {
            let out = self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(RECORDS_PER_READ)
                .send()
                .await
                .map_err(|e| replay_error("GetRecords", e))?;
            let records = out.records.unwrap_or_default();
            empty = if records.is_empty() { empty + 1 } else { 0 };
            for record in &records {
                let number = record
                    .dynamodb()
                    .and_then(|d| d.sequence_number())
                    .unwrap_or_default();
                if !sequence_at_most(number, &batch.end_sequence_number) {
                    return Ok(found);
                }
                let last = number == batch.end_sequence_number;
                let record = lambda_record(record, &batch.stream_arn);
                if filter.matches(&record) {
                    found.push(record);
                }
                if last {
                    return Ok(found);
                }
            }
            next = out.next_shard_iterator;
            if empty >= EMPTY_READS && next.is_some() {
                return Err(ReplayError::Store(StoreError::Unavailable {
                    message: format!(
                        "the stream's shard {} answered nothing before the failed batch's last record {}",
                        batch.shard_id, batch.end_sequence_number
                    ),
                    source: None,
                }));
            }
        }
        // The shard is closed and was read to its end: every record of the batch is read.
        Ok(found)
    }
}

/// What a failed stream read means for a replay: the records are gone (trimmed after 24
/// hours, or the shard or stream no longer exists), or the read failed and is retried by
/// the next sweep.
fn replay_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> ReplayError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err.as_service_error().and_then(|e| e.code()) {
        Some("TrimmedDataAccessException" | "ResourceNotFoundException") => {
            ReplayError::Gone(err.to_string())
        }
        _ => ReplayError::Store(from_sdk(operation, err)),
    }
}

/// `a <= b` for stream sequence numbers: decimal digits, without leading zeros.
fn sequence_at_most(a: &str, b: &str) -> bool {
    (a.len(), a) <= (b.len(), b)
}

impl Sequencer {
    /// Replays the failed batches waiting in `failed`'s queue until it is empty or the
    /// sweep's time is up, adding what it did to `report`. A batch whose replay fails keeps
    /// its message (hidden for two minutes, then tried again); the others go on, and the
    /// first such error is returned at the end, so that the sweep counts as failed.
    pub(crate) async fn replay_failed(
        &self,
        failed: &FailedBatches,
        started: Instant,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let mut first_error = None;
        while started.elapsed() < SWEEP_BUDGET {
            let out = failed
                .sqs
                .receive_message()
                .queue_url(&failed.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(VISIBILITY_SECONDS)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| from_sdk("ReceiveMessage", e))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let body = message.body().unwrap_or_default();
                let batch = match serde_json::from_str::<FailedBatch>(body) {
                    Ok(failed) => failed.batch,
                    Err(err) => {
                        tracing::error!(error = %err, body, "a message in the failed-batch queue is not a failed stream batch; left in the queue");
                        report.unreplayable += 1;
                        continue;
                    }
                };
                match self.replay(failed, &batch).await {
                    Ok(sequenced) => {
                        report.batches += 1;
                        report.streams += sequenced.streams_behind;
                        report.events += sequenced.events;
                        report.max_lag_ms = report.max_lag_ms.max(sequenced.max_lag_ms);
                    }
                    Err(ReplayError::Gone(why)) => {
                        tracing::error!(shard = batch.shard_id, first = batch.start_sequence_number,
                            last = batch.end_sequence_number, reason = why,
                            "a failed batch cannot be replayed: its records are gone from the stream; run `eventstore repair`");
                        report.unreplayable += 1;
                        continue;
                    }
                    Err(ReplayError::Store(err)) => {
                        tracing::error!(shard = batch.shard_id, first = batch.start_sequence_number,
                            error = %err, "replaying a failed batch failed; the next sweep tries again");
                        first_error.get_or_insert(err);
                        continue;
                    }
                }
                if let Some(receipt) = message.receipt_handle() {
                    failed
                        .sqs
                        .delete_message()
                        .queue_url(&failed.queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(|e| from_sdk("DeleteMessage", e))?;
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Reads one failed batch's records back and sequences the streams they name, as the
    /// stream path would have.
    async fn replay(
        &self,
        failed: &FailedBatches,
        batch: &BatchInfo,
    ) -> Result<crate::SequenceReport, ReplayError> {
        let records = failed.records(batch).await?;
        let event: Event = serde_json::from_value(serde_json::json!({ "Records": records }))
            .map_err(|e| StoreError::internal("building a DynamoDB stream event", e))?;
        let hints: Vec<_> = event.records.iter().filter_map(hint_of).collect();
        let images = images_of(&event.records);
        // The sweep holds the gate.
        Ok(self.sequence_in_turn(&hints, &images).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_at_most("9", "10"));
        assert!(sequence_at_most("100", "100"));
        assert!(!sequence_at_most("101", "100"));
        assert!(!sequence_at_most("1000", "999"));
    }

    #[test]
    fn the_mappings_failure_record_reads_back() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/dynamodb/sequencer-failure.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let failed: FailedBatch = serde_json::from_str(&text).unwrap();
        assert_eq!(failed.batch.batch_size, 2);
        assert_eq!(
            failed.batch.shard_id,
            "shardId-00000001764151200000-4f1b2c3d"
        );
        assert!(sequence_at_most(
            &failed.batch.start_sequence_number,
            &failed.batch.end_sequence_number
        ));
    }
}
