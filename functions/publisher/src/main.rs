//! Lambda function `publisher`: wiring only. Fed, as the projector is, by the records of
//! the sequencer's counter item and a schedule (see `infra/template.yaml`), it publishes
//! the global order to the EventBridge bus `EVENT_BUS_NAME` with the core's publisher.
#![forbid(unsafe_code)]

use eventstore_dynamodb::{Components, PublishSettings, PublisherTrigger};
use eventstore_eventbridge::EventBridgeBus;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eventstore_dynamodb::xray::init_lambda_tracing();
    // A missing or bad setting stops the function at its start, with the reason in its log.
    let settings = PublishSettings::from_env()?.ok_or("EVENT_BUS_NAME is not set")?;
    let components = Components::from_env(eventstore_app::registry()).await;
    let bus = EventBridgeBus::from_env(&settings.bus).await;
    let publisher = components.publisher(bus, settings.config);
    let publisher = &publisher;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // Stream records or the scheduled event. An error fails the whole batch, and the
            // event source retries it from the unmoved checkpoint.
            publisher.invoke(event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
