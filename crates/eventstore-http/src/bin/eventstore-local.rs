//! `make dev`: the HTTP API on 127.0.0.1:$PORT against the DynamoDB the SDK variables name,
//! with the sequencer fed by a local poller of the table's stream.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use eventstore_http::{local, App, Mount};

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
    let app = Arc::new(App::from_env(Mount::All).await);
    let table = app.store().log().table().to_owned();
    let endpoint = eventstore_dynamodb::endpoint_description();
    if let Err(err) = app.store().log().create_table().await {
        eprintln!("could not create table {table} at {endpoint}: {err}");
        return ExitCode::FAILURE;
    }
    let tables = eventstore_dynamodb::Config::from_env().projection_tables;
    for table in [&tables.rows, &tables.checkpoints] {
        let client = eventstore_dynamodb::client_from_env().await;
        if let Err(err) = eventstore_dynamodb::create_key_value_table(&client, table).await {
            eprintln!("could not create table {table} at {endpoint}: {err}");
            return ExitCode::FAILURE;
        }
    }
    local::spawn_sequencer(app.store().log().clone());
    local::spawn_projector(eventstore_dynamodb::Projector::new(
        app.store().log().clone(),
        tables,
        eventstore_core::builtin::all(),
    ));
    let listener = match local::bind(port).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "event store API on http://127.0.0.1:{port} (DynamoDB: {endpoint}, table {table}, sequencer and projections polling its stream); Ctrl-C stops it"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match local::serve(app, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}
