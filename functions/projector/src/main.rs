//! Lambda function `projector`: wiring only. It is fed by the records of the sequencer's
//! counter item, and invoked every minute by a schedule (see `infra/template.yaml`); the
//! work is `eventstore_dynamodb::Projector`.
#![forbid(unsafe_code)]

use eventstore_dynamodb::{client_from_env, Config, DynamoEventLog, Projector};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env();
    let projector = Projector::new(
        DynamoEventLog::new(client_from_env().await, config.events_table),
        config.projection_tables,
        eventstore_core::builtin::all(),
    );
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
