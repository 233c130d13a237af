//! Lambda function `sequencer`: wiring only. It is fed by the events table's DynamoDB Stream
//! and by a schedule that sweeps for stranded appends (see `infra/template.yaml`); the work
//! is `eventstore_dynamodb::Sequencer::invoke`.
#![forbid(unsafe_code)]

use eventstore_core::Registry;
use eventstore_dynamodb::trigger::Invocation;
use eventstore_dynamodb::Components;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eventstore_dynamodb::xray::init_lambda_tracing();
    // The sequencer runs no projections: it needs no app registry.
    let sequencer = Components::from_env(Registry::new()).await.sequencer();
    let sequencer = &sequencer;
    run(service_fn(
        move |event: LambdaEvent<Invocation>| async move {
            // An error fails the whole batch, and the event source retries it.
            sequencer.invoke(event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
