//! Stream-trigger glue: what turns Lambda invocations (DynamoDB stream batches, schedules)
//! into calls of the sequencer and the projection engine, and the local event source that
//! stands in for Lambda's stream polling under `make dev` and in the tests. The storage
//! modules know nothing of Lambda's event types; this module does.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use eventstore_core::StoreError;

pub mod failed;
pub mod filter;
pub mod local;
pub mod projector;
pub mod publisher;
pub mod sequencer;

pub use failed::{FailedBatch, FailedBatches};
pub use local::{run_locally, LocalEventSource, StreamConsumer};
pub use projector::{ProjectorTrigger, COUNTER_FILTER};
pub use publisher::{DynamoPublisher, PublisherTrigger};
pub use sequencer::{Invocation, SweepRequest, EVENT_INSERTS_FILTER, SWEEP_INPUT};

/// The highest global position a batch of the counter item's records names (`last`), if
/// any: how far the projector and the publisher have to go.
pub fn counter_last(event: &Event) -> Option<u64> {
    event
        .records
        .iter()
        .filter_map(
            |r| match r.change.new_image.get(crate::keys::COUNTER_LAST) {
                Some(serde_dynamo::AttributeValue::N(v)) => v.parse::<u64>().ok(),
                _ => None,
            },
        )
        .max()
}

/// Runs `tick` every `period`, for as long as the process lives: the local stand-in for a
/// template's one-minute schedule. A failure is logged and the next tick comes anyway.
pub async fn every<F, Fut, T>(period: std::time::Duration, what: &str, tick: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    loop {
        tokio::time::sleep(period).await;
        if let Err(err) = tick().await {
            tracing::warn!(error = %err, "scheduled {what} failed");
        }
    }
}

/// The answer of a stream handler that failed: the batch's first record reported as failed,
/// so that the event source retries the whole batch (the handlers are idempotent, so what
/// did commit is not repeated). A batch with no sequence number fails as a whole instead.
pub fn retry_batch(event: &Event, err: StoreError) -> Result<DynamoDbEventResponse, StoreError> {
    let first = event
        .records
        .iter()
        .find_map(|r| r.change.sequence_number.clone());
    let Some(sequence_number) = first else {
        return Err(err);
    };
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence_number);
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures.push(failure);
    Ok(response)
}
