//! Lambda function `projector`: wiring only. It is fed by the records of the sequencer's
//! counter item, and invoked every minute by a schedule (see `infra/template.yaml`); the
//! work is the core's projection engine over DynamoDB, with the app's projections and
//! upcasters (`eventstore_app::registry`).
#![forbid(unsafe_code)]

use eventstore_dynamodb::{Components, ProjectorTrigger};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eventstore_dynamodb::xray::init_lambda_tracing();
    let components = Components::from_env(eventstore_app::registry()).await;
    let projector = components.projector();
    let projector = &projector;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // Stream records or the scheduled event. An error fails the whole batch, and the
            // event source retries it (the schedule simply comes again).
            projector.invoke(event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
