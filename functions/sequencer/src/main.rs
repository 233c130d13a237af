//! Lambda function `sequencer`: wiring only. It is fed by the events table's DynamoDB Stream
//! and by a schedule that sweeps for stranded appends (see `infra/template.yaml`); the work
//! is `eventstore_dynamodb::Sequencer::invoke`.
#![forbid(unsafe_code)]

use eventstore_dynamodb::sequencer::Invocation;
use eventstore_dynamodb::{client_from_env, Config, DynamoEventLog, Sequencer};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env();
    let sequencer = Sequencer::new(DynamoEventLog::new(
        client_from_env().await,
        config.events_table,
    ));
    let sequencer = &sequencer;
    run(service_fn(
        move |event: LambdaEvent<Invocation>| async move {
            // An error fails the whole batch, and the event source retries it.
            sequencer.invoke(event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
