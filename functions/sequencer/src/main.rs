//! Lambda function `sequencer`: wiring only. It is fed by the events table's DynamoDB Stream
//! (see `infra/template.yaml`); the work is `eventstore_dynamodb::Sequencer::handle`.
#![forbid(unsafe_code)]

use aws_lambda_events::event::dynamodb::Event;
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
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        // An error fails the whole batch, and the event source retries it.
        sequencer.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
