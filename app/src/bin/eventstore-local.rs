//! `make dev`: the HTTP API on 127.0.0.1:$PORT against the DynamoDB the SDK variables name,
//! with the sequencer and the projector fed by local pollers of the table's stream, all
//! built by the same composition root as the Lambda functions.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use eventstore_dynamodb::trigger::projector::LOCAL_CATCH_UP_EVERY;
use eventstore_dynamodb::trigger::publisher::LOCAL_PUBLISH_EVERY;
use eventstore_dynamodb::{Components, PublishSettings, PublisherTrigger};
use eventstore_eventbridge::EventBridgeBus;
use eventstore_http::auth::dev::DevKey;
use eventstore_http::{local, App, AuthConfig, AuthMode, Mount};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let port = match local::port_from_env() {
        Ok(port) => port,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    // Off unless AUTH_MODE=jwt: then bearer tokens signed by the development key, checked
    // here as API Gateway's JWT authorizer checks them on AWS.
    let auth = match AuthConfig::from_env() {
        Ok(auth) if auth.mode == AuthMode::Iam => {
            eprintln!("AUTH_MODE=iam is enforced by API Gateway (SigV4); locally use jwt or off");
            return ExitCode::FAILURE;
        }
        Ok(auth) => auth,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let tokens = (auth.mode == AuthMode::Jwt).then(DevKey::from_env);
    // The publisher runs where there is an EventBridge to publish to: EVENT_BUS_NAME's bus,
    // or, with a local EventBridge endpoint (scripts/with-dynamodb.sh sets moto's), its
    // default bus.
    let publish = match PublishSettings::from_env() {
        Ok(Some(settings)) => Some(settings),
        Ok(None) if std::env::var_os("AWS_ENDPOINT_URL_EVENTBRIDGE").is_some() => {
            PublishSettings::from_lookup(|name| match name {
                "EVENT_BUS_NAME" => Some("default".to_owned()),
                other => std::env::var(other).ok(),
            })
            .ok()
            .flatten()
        }
        Ok(None) => None,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let mut components = Components::from_env(eventstore_app::registry()).await;
    let table = components.config.events_table.clone();
    let endpoint = eventstore_dynamodb::endpoint_description();
    if let Err(err) = components.create_tables().await {
        eprintln!("could not create the tables at {endpoint}: {err}");
        return ExitCode::FAILURE;
    }
    if let Err(err) = components.create_local_failure_queue().await {
        eprintln!("could not create the sequencer's failed-batch queue: {err}");
        return ExitCode::FAILURE;
    }
    local::spawn_sequencer(components.sequencer());
    local::spawn_projector(components.projector(), LOCAL_CATCH_UP_EVERY);
    let publisher_note = match publish {
        Some(settings) => {
            let note = format!("publishing to EventBridge bus {}", settings.bus);
            let bus = EventBridgeBus::from_env(&settings.bus).await;
            let publisher = components.publisher(bus, settings.config);
            tokio::spawn(publisher.run_locally(LOCAL_PUBLISH_EVERY));
            note
        }
        None => "no publisher: set EVENT_BUS_NAME".to_owned(),
    };
    let app = Arc::new(App::from_components(&components, Mount::All).with_authorization(auth));
    let listener = match local::bind(port).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let auth_note = if tokens.is_some() {
        "bearer tokens from `eventstore dev-token` required"
    } else {
        "no authorization"
    };
    println!(
        "event store API on http://127.0.0.1:{port} (DynamoDB: {endpoint}, table {table}, sequencer and projections polling its stream; {publisher_note}; {auth_note}); Ctrl-C stops it"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match local::serve(app, listener, tokens, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}
