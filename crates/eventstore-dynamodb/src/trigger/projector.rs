//! The projector function's triggers: the counter item's stream records, the scheduled
//! catch-up, and the local stand-ins for both.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use eventstore_core::{Pass, StoreError};
use serde_json::Value;

use super::{counter_last, every, retry_batch, run_locally, LocalEventSource, StreamConsumer};
use crate::metrics::{self, Metrics};
use crate::projections::Projector;

/// The Lambda event filter of the projector's event source: the counter item's records.
/// `infra/template.yaml` declares the same pattern.
pub const COUNTER_FILTER: &str =
    r#"{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"PK":{"S":["COUNTER#ALL"]}}}}"#;

/// How often the local projector runs the scheduled catch-up (a minute on AWS).
pub const LOCAL_CATCH_UP_EVERY: Duration = Duration::from_secs(5);

/// The projector's Lambda entry points, on the projection engine over DynamoDB.
pub trait ProjectorTrigger {
    /// The counter's stream records: brings every projection up to the highest position
    /// the batch's records name ([`eventstore_core::ProjectionEngine::catch_up_all`]). If a
    /// projection fails, the first record is reported, so the event source retries (what
    /// committed is not repeated). One left behind, out of time or because the index lags,
    /// does not fail the batch: retrying it could not do more than the scheduled catch-up
    /// does, and Lambda's retries run out.
    fn handle(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<DynamoDbEventResponse, StoreError>> + Send;

    /// The scheduled catch-up (`infra/template.yaml`'s `CatchUp` schedule; locally a
    /// timer): brings every projection towards the head whether or not new events arrive,
    /// so one left behind reaches the head by itself once the index has caught up.
    fn handle_scheduled(&self) -> impl Future<Output = Result<Pass, StoreError>> + Send;

    /// Whatever the Lambda function is invoked with: a batch of stream records (the
    /// response to it is Lambda's partial batch response), or the scheduled event.
    fn invoke(&self, payload: Value) -> impl Future<Output = Result<Value, StoreError>> + Send;

    /// The local event source that feeds this projector as the template's mapping does.
    fn local_source(&self) -> impl Future<Output = Result<LocalEventSource, StoreError>> + Send;

    /// Runs the projector locally as the deployed stack does, for as long as the process
    /// lives: the counter's stream records through the local event source, and the
    /// scheduled catch-up every `catch_up_every`.
    fn run_locally(self, catch_up_every: Duration) -> impl Future<Output = ()> + Send;
}

/// A pass's metrics, one EMF line per projection.
fn emit_pass_metrics(pass: &Pass) {
    for (name, report) in &pass.reports {
        let mut m = Metrics::new().dimension("Projection", name.as_str());
        m.put(&metrics::EVENTS_APPLIED, report.applied as f64)
            .put(&metrics::EVENTS_PARKED, report.parked as f64);
        m.emit();
    }
    for (name, _) in &pass.failed {
        let mut m = Metrics::new().dimension("Projection", name.as_str());
        m.put(&metrics::PROJECTION_FAILURES, 1.0);
        m.emit();
    }
}

impl ProjectorTrigger for Projector {
    async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        let up_to = counter_last(&event);
        let Some(up_to) = up_to else {
            return Ok(DynamoDbEventResponse::default());
        };
        let pass = Box::pin(self.catch_up_all(Some(up_to))).await?;
        emit_pass_metrics(&pass);
        match pass.failed.into_iter().next() {
            None => Ok(DynamoDbEventResponse::default()),
            Some((_, err)) => retry_batch(&event, err),
        }
    }

    async fn handle_scheduled(&self) -> Result<Pass, StoreError> {
        let pass = Box::pin(self.catch_up_all(None)).await?;
        emit_pass_metrics(&pass);
        // Once a minute, each projection's distance from the head: what the lag alarm
        // watches (one consistent read per projection).
        for projection in self.projections() {
            let position = self.checkpoint(projection.name()).await?.position;
            let mut lag = Metrics::new().dimension("Projection", projection.name());
            lag.put(
                &metrics::PROJECTION_LAG,
                pass.target.saturating_sub(position) as f64,
            );
            lag.emit();
        }
        match pass.failed.first() {
            None => Ok(pass),
            Some((name, err)) => Err(StoreError::Unavailable {
                message: format!("projection {name} failed: {err}"),
                source: None,
            }),
        }
    }

    async fn invoke(&self, payload: Value) -> Result<Value, StoreError> {
        if payload.get("Records").is_some() {
            let event: Event = serde_json::from_value(payload)
                .map_err(|e| StoreError::internal("decoding a DynamoDB stream event", e))?;
            // Boxed, as the catch-ups inside: the Lambda runtime's service future must stay
            // within the compiler's layout depth.
            let response = Box::pin(ProjectorTrigger::handle(self, event)).await?;
            return serde_json::to_value(response)
                .map_err(|e| StoreError::internal("encoding the batch response", e));
        }
        if payload.get("source").and_then(Value::as_str) == Some("aws.events") {
            Box::pin(self.handle_scheduled()).await?;
            return Ok(Value::Null);
        }
        Err(StoreError::corrupt(
            "the projector was invoked with neither stream records nor a scheduled event",
        ))
    }

    async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        LocalEventSource::for_table(self.log(), COUNTER_FILTER).await
    }

    async fn run_locally(self, catch_up_every: Duration) {
        let projector = self.clone();
        let timer = every(catch_up_every, "catch-up", || projector.handle_scheduled());
        tokio::join!(run_locally(self, "projector"), timer);
    }
}

impl StreamConsumer for Projector {
    async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        ProjectorTrigger::local_source(self).await
    }

    async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        ProjectorTrigger::handle(self, event).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counter_filter_names_the_counter_key() {
        let pattern: serde_json::Value = serde_json::from_str(super::COUNTER_FILTER).unwrap();
        assert_eq!(
            pattern["dynamodb"]["Keys"]["PK"]["S"][0],
            crate::keys::GLOBAL_COUNTER_PK
        );
    }
}
