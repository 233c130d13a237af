//! Lambda function `read-api`: wiring only. The routes and handlers live in `eventstore-http`.
#![forbid(unsafe_code)]

use eventstore_dynamodb::Components;
use eventstore_http::{App, AuthConfig, Mount};
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per the function's LoggingConfig (AWS_LAMBDA_LOG_FORMAT), level from
    // AWS_LAMBDA_LOG_LEVEL; spans to X-Ray as subsegments.
    eventstore_dynamodb::xray::init_lambda_tracing();
    // Who may do what: AUTH_MODE and friends, which the template sets. A bad setting stops
    // the function at its start, with the reason in the log.
    let auth = AuthConfig::from_env()?;
    // Built once per execution environment, as every entry point builds it.
    let components = Components::from_env(eventstore_app::registry()).await;
    let app = App::from_components(&components, Mount::Read).with_authorization(auth);
    run(service_fn(|request| app.handle_lambda(request))).await
}
