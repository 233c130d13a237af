//! The local HTTP server: hyper on 127.0.0.1, handing every request to [`App::handle`], and
//! the local stand-in for the sequencer's event source mapping. With a development key it
//! also stands in for API Gateway's JWT authorizer (see [`crate::auth::dev`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventstore_core::ValidationError;
use eventstore_core::{EventLog, ProjectionStore, SnapshotStore, SubscriptionStore};
use eventstore_dynamodb::trigger::{run_locally, ProjectorTrigger};
use eventstore_dynamodb::{Projector, Sequencer};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, RequestExt};
use tokio::net::TcpListener;

use crate::auth::dev::{self, DevKey};
use crate::{ApiError, App, MAX_BODY_BYTES};

/// `PORT`, default 3000.
pub fn port_from_env() -> Result<u16, String> {
    match std::env::var("PORT") {
        Err(_) => Ok(3000),
        Ok(text) => text
            .parse()
            .map_err(|_| format!("PORT must be a port number, got {text:?}")),
    }
}

/// Binds 127.0.0.1:`port` (loopback only: without a development key the local server
/// authenticates no one).
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Serves `app` on `listener` until `shutdown` completes. With `tokens`, every request needs
/// a bearer token signed by that development key, and reaches the app with the request
/// context API Gateway's JWT authorizer would give it; without, requests carry no identity.
pub async fn serve<L, P, F>(
    app: Arc<App<L, P>>,
    listener: TcpListener,
    tokens: Option<DevKey>,
    shutdown: F,
) -> std::io::Result<()>
where
    L: EventLog + SnapshotStore + 'static,
    P: ProjectionStore + SubscriptionStore + 'static,
    F: std::future::Future<Output = ()>,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let app = app.clone();
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                let tokens = tokens.clone();
                async move { Ok::<_, Infallible>(answer(&app, tokens.as_ref(), req).await) }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
}

async fn answer<L, P>(
    app: &App<L, P>,
    tokens: Option<&DevKey>,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>>
where
    L: EventLog + SnapshotStore,
    P: ProjectionStore + SubscriptionStore,
{
    let request_id = uuid::Uuid::now_v7().to_string();
    let (parts, body) = req.into_parts();
    let response = match read_body(&parts.headers, body).await {
        Ok(bytes) => {
            let body = if bytes.is_empty() {
                Body::Empty
            } else {
                Body::Binary(bytes)
            };
            let request = lambda_http::Request::from_parts(parts, body);
            match authenticate(tokens, request) {
                Ok(request) => app.handle(request, &request_id).await,
                Err(refused) => refused.into_response(),
            }
        }
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => ApiError::BodyTooLarge {
            limit: MAX_BODY_BYTES,
        }
        .into_response(),
        Err(err) => ApiError::from(ValidationError::new(
            "body",
            format!("could not be read: {err}"),
        ))
        .into_response(),
    };
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(Bytes::from(body.to_vec())))
}

/// What API Gateway's JWT authorizer does before the function runs: no valid bearer token,
/// no request (401); a valid one, its claims and scopes in the request context.
fn authenticate(
    tokens: Option<&DevKey>,
    request: lambda_http::Request,
) -> Result<lambda_http::Request, ApiError> {
    let Some(key) = tokens else {
        return Ok(request);
    };
    let unauthorized = |message: String| ApiError::Unauthorized {
        scheme: "Bearer",
        message,
    };
    let token = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            unauthorized(
                "send Authorization: Bearer <token> (mint one with `eventstore dev-token`)".into(),
            )
        })?;
    let claims = key
        .verify(token.trim())
        .map_err(|err| unauthorized(err.to_string()))?;
    Ok(request.with_request_context(dev::request_context(&claims)))
}

/// Reads a request body of at most [`MAX_BODY_BYTES`] into one buffer, copying each frame
/// as it arrives. Collecting the frames first and joining them afterwards holds every
/// frame's receive buffer at once: about 30 times the body's size for a 6 MB body.
async fn read_body(
    headers: &hyper::HeaderMap,
    body: Incoming,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut bytes = Vec::with_capacity(declared.min(MAX_BODY_BYTES));
    let mut body = Limited::new(body, MAX_BODY_BYTES);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// How often the local sequencer sweeps (the template's schedule sweeps every minute;
/// locally sooner is friendlier).
const LOCAL_SWEEP: Duration = Duration::from_secs(10);

/// Runs the sequencer as the deployed stack does, for as long as the process lives. Lambda's
/// event source mapping does not exist locally, so a local poller of the table's stream
/// feeds the same handler the `sequencer` function runs (and records the batches it gives
/// up on in the sequencer's failed-batch queue, if it has one), and a timer stands in for
/// the template's sweep schedule.
pub fn spawn_sequencer(sequencer: Sequencer) -> tokio::task::JoinHandle<()> {
    let sweeper = sequencer.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LOCAL_SWEEP).await;
            if let Err(err) = sweeper.scheduled_sweep().await {
                tracing::warn!(error = %err, "sweep failed; retrying at the next one");
            }
        }
    });
    tokio::spawn(run_locally(sequencer, "sequencer"))
}

/// Runs the projections as the deployed stack does: a local poller of the counter item's
/// stream records feeds the same handler the `projector` function runs, and a timer runs
/// the scheduled catch-up every `catch_up_every` (see [`ProjectorTrigger::run_locally`]).
pub fn spawn_projector(
    projector: Projector,
    catch_up_every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(projector.run_locally(catch_up_every))
}
