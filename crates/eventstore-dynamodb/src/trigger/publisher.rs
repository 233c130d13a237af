//! The publisher function's triggers: the counter item's stream records (as the
//! projector's), the scheduled catch-up, and the local stand-ins for both.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use eventstore_core::publish::{EventBus, PublishFailed, PublishReport, Publisher, PublisherStore};
use eventstore_core::{EventLog, StoreError};
use serde_json::Value;

use super::{
    counter_last, retry_batch, run_locally, LocalEventSource, StreamConsumer, COUNTER_FILTER,
};
use crate::metrics::{self, Metrics};
use crate::{DynamoEventLog, DynamoPublisherStore};

/// The publisher over DynamoDB, to bus `B` (EventBridge when deployed).
pub type DynamoPublisher<B> = Publisher<DynamoEventLog, B, DynamoPublisherStore>;

/// How long one invocation publishes before it leaves the rest to the next (the function's
/// timeout is 5 minutes; a run stops between pages, never inside one).
pub const PUBLISH_BUDGET: Duration = Duration::from_secs(120);

/// How often the local publisher runs the scheduled catch-up (a minute on AWS).
pub const LOCAL_PUBLISH_EVERY: Duration = Duration::from_secs(5);

/// The publisher's Lambda entry points.
pub trait PublisherTrigger {
    /// The counter's stream records: publishes up to the highest position they name. A
    /// failure reports the batch's first record, so the event source retries it from the
    /// unmoved checkpoint (what was published is sent again: at least once).
    fn handle(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<DynamoDbEventResponse, StoreError>> + Send;

    /// The scheduled catch-up: publishes whatever is behind, whether or not records come,
    /// and reports the publisher's lag.
    fn handle_scheduled(&self) -> impl Future<Output = Result<PublishReport, StoreError>> + Send;

    /// Stream records or the scheduled event.
    fn invoke(&self, payload: Value) -> impl Future<Output = Result<Value, StoreError>> + Send;

    /// Runs the publisher locally as the deployed stack does: the counter's records through
    /// the local event source, and the scheduled catch-up every `period`.
    fn run_locally(self, period: Duration) -> impl Future<Output = ()> + Send;
}

/// A run's metrics: what it published and parked, failed or not, and the failure.
fn emit(publisher: &str, result: &Result<PublishReport, PublishFailed>) {
    let report = match result {
        Ok(report) => report,
        Err(failed) => &failed.report,
    };
    let mut m = Metrics::new().dimension("Publisher", publisher);
    m.put(&metrics::EVENTS_PUBLISHED, report.published as f64)
        .put(&metrics::PUBLISHER_PARKED, report.parked as f64);
    if let Err(failed) = result {
        tracing::error!(publisher, error = %failed.source, "publishing failed; the next trigger retries from the checkpoint");
        m.put(&metrics::PUBLISH_FAILURES, 1.0);
    }
    m.emit();
}

impl<B: EventBus + Clone + 'static> PublisherTrigger for DynamoPublisher<B> {
    async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        let up_to = counter_last(&event);
        let Some(up_to) = up_to else {
            return Ok(DynamoDbEventResponse::default());
        };
        let result = self.publish(Some(up_to), PUBLISH_BUDGET).await;
        emit(&self.config().name, &result);
        match result {
            Ok(_) => Ok(DynamoDbEventResponse::default()),
            Err(failed) => retry_batch(&event, failed.source),
        }
    }

    async fn handle_scheduled(&self) -> Result<PublishReport, StoreError> {
        let result = self.publish(None, PUBLISH_BUDGET).await;
        emit(&self.config().name, &result);
        // Reported whether or not the run failed, so that a publisher stuck on a failing
        // page shows (and alarms) as behind. Caught up, it is not behind, even when a
        // filtered publisher's checkpoint sits at its last event and other events follow.
        let (caught_up, checkpoint) = match &result {
            Ok(report) => (report.caught_up, report.checkpoint),
            Err(failed) => (false, failed.report.checkpoint),
        };
        let behind = if caught_up {
            0
        } else {
            let head = self.store().log().last_position().await?;
            head.saturating_add(1).saturating_sub(checkpoint)
        };
        let mut lag = Metrics::new().dimension("Publisher", self.config().name.as_str());
        lag.put(&metrics::PUBLISHER_LAG, behind as f64);
        lag.emit();
        result.map_err(|failed| failed.source)
    }

    async fn invoke(&self, payload: Value) -> Result<Value, StoreError> {
        if payload.get("Records").is_some() {
            let event: Event = serde_json::from_value(payload)
                .map_err(|e| StoreError::internal("decoding a DynamoDB stream event", e))?;
            let response = Box::pin(PublisherTrigger::handle(self, event)).await?;
            return serde_json::to_value(response)
                .map_err(|e| StoreError::internal("encoding the batch response", e));
        }
        if payload.get("source").and_then(Value::as_str) == Some("aws.events") {
            Box::pin(self.handle_scheduled()).await?;
            return Ok(Value::Null);
        }
        Err(StoreError::corrupt(
            "the publisher was invoked with neither stream records nor a scheduled event",
        ))
    }

    async fn run_locally(self, period: Duration) {
        let publisher = self.clone();
        let timer = super::every(period, "publishing", || publisher.handle_scheduled());
        tokio::join!(run_locally(self, "publisher"), timer);
    }
}

impl<B: EventBus + Clone + 'static> StreamConsumer for DynamoPublisher<B> {
    async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        LocalEventSource::for_table(self.store().log(), COUNTER_FILTER).await
    }

    async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        PublisherTrigger::handle(self, event).await
    }
}

/// The checkpoints behind a publisher, for the CLI and tests.
pub async fn parked<B: EventBus>(
    publisher: &DynamoPublisher<B>,
) -> Result<Vec<eventstore_core::publish::ParkedEntry>, StoreError> {
    publisher
        .checkpoints()
        .parked(&publisher.config().name)
        .await
}
