//! The sequencer function's triggers: the events table's stream batches, the sweep
//! schedule, and the local stand-in for the stream.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use eventstore_core::{StoreError, StreamId};

use super::{retry_batch, LocalEventSource, StreamConsumer};
use crate::item::EventItem;
use crate::keys;
use crate::metrics::{self, Metrics};
use crate::sequencer::{Images, Sequencer, StreamHint, Unsequenced};

/// The Lambda event filter the sequencer's event source applies: inserts under `VERSION#`
/// keys, that is event items and, rarely, snapshot copies (once per snapshot; their records
/// name no version, and `hint_of` drops them). `infra/template.yaml` declares the same
/// pattern (a test keeps them equal), and the local event source applies it too.
pub const EVENT_INSERTS_FILTER: &str =
    r#"{"eventName":["INSERT"],"dynamodb":{"Keys":{"SK":{"S":[{"prefix":"VERSION#"}]}}}}"#;

/// The input the template's schedule sends the sequencer function (a test keeps them equal).
pub const SWEEP_INPUT: &str = r#"{"sweep":{}}"#;

/// What the sequencer function is invoked with: a batch of stream records, or the schedule's
/// sweep.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    Sweep { sweep: SweepRequest },
    Stream(Box<Event>),
}

/// The sweep takes no parameters. Unknown fields are accepted: earlier versions' schedules
/// sent `olderThanSeconds`, and one may fire while a deployment replaces it.
#[derive(Debug, serde::Deserialize)]
pub struct SweepRequest {}

impl Sequencer {
    /// The Lambda entry point for both triggers: a stream batch answers with
    /// `batchItemFailures`, a sweep with its report.
    pub async fn invoke(&self, invocation: Invocation) -> Result<serde_json::Value, StoreError> {
        // Boxed: both futures are deep, and the Lambda's future holding them inline goes
        // past the compiler's layout depth limit.
        let answer = match invocation {
            Invocation::Stream(event) => serde_json::to_value(Box::pin(self.handle(*event)).await?),
            Invocation::Sweep { sweep: _ } => serde_json::to_value(self.scheduled_sweep().await?),
        };
        answer.map_err(|e| StoreError::internal("encoding the sequencer's answer", e))
    }

    /// The Lambda entry point for a stream batch: sequences the streams the batch's records
    /// hint at. On failure the whole batch is retried ([`retry_batch`]).
    pub async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        let hints: Vec<StreamHint> = event.records.iter().filter_map(hint_of).collect();
        let images = images_of(&event.records);
        match self.sequence_with(&hints, &images).await {
            Ok(report) => {
                let mut metrics = Metrics::new();
                metrics
                    .put(&metrics::EVENTS_SEQUENCED, report.events as f64)
                    .put(&metrics::LOST_ROUNDS, report.lost_rounds as f64);
                if report.claims > 0 {
                    metrics.put(
                        &metrics::EVENTS_PER_TRANSACTION,
                        report.events as f64 / report.claims as f64,
                    );
                }
                if let Some(lag) = report.max_lag_ms {
                    metrics.put(&metrics::SEQUENCING_LAG, lag as f64);
                }
                metrics.emit();
                tracing::info!(
                    records = event.records.len(),
                    streams = hints.len(),
                    events = report.events,
                    claims = report.claims,
                    lost_rounds = report.lost_rounds,
                    "sequenced"
                );
                Ok(DynamoDbEventResponse::default())
            }
            Err(err) => {
                let mut failed = Metrics::new();
                failed.put(&metrics::SEQUENCING_FAILURES, 1.0);
                failed.emit();
                tracing::error!(error = %err, records = event.records.len(), "sequencing failed");
                retry_batch(&event, err)
            }
        }
    }

    /// The local event source that feeds this sequencer as the template's event source
    /// mapping feeds the Lambda: the table's stream, the same filter, the same batch size.
    pub async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        Ok(LocalEventSource::for_table_with(
            self.log(),
            EVENT_INSERTS_FILTER,
            super::local::SourceSettings {
                batch_size: super::local::SEQUENCER_BATCH_SIZE,
                ..Default::default()
            },
        )
        .await?
        .on_failure(self.failed_batches().cloned()))
    }
}

/// What the records' new images say of the events they announce. A record whose image is
/// missing or not an event item adds nothing: its stream is read with a Query.
pub fn images_of(records: &[EventRecord]) -> Images {
    let mut images = Images::default();
    for record in records {
        let Some(hint) = hint_of(record) else {
            continue;
        };
        let image = record.change.new_image.clone();
        if let Ok(item) = serde_dynamo::from_item::<_, EventItem>(image) {
            if item.version == hint.version {
                images.add(hint.stream, Unsequenced::of(item));
            }
        }
    }
    images
}

/// The stream and version an event item's stream record names; `None` for other items.
pub fn hint_of(record: &EventRecord) -> Option<StreamHint> {
    let text = |k: &str| match record.change.keys.get(k) {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    };
    let stream = keys::stream_of_pk(text(keys::PK)?)?;
    // Versions count from 1; a record of version 0 names no event.
    let version = keys::parse_version_sk(text(keys::SK)?).filter(|&v| v >= 1)?;
    Some(StreamHint {
        stream: StreamId::stored(stream, "streamId").ok()?,
        version,
    })
}

impl StreamConsumer for Sequencer {
    async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        Sequencer::local_source(self).await
    }

    async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        Sequencer::handle(self, event).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_event_filter_names_the_event_sort_key_prefix() {
        let pattern: serde_json::Value = serde_json::from_str(super::EVENT_INSERTS_FILTER).unwrap();
        assert_eq!(
            pattern["dynamodb"]["Keys"]["SK"]["S"][0]["prefix"],
            crate::keys::event_sk_prefix()
        );
    }
}
