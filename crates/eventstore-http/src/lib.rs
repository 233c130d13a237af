//! The event store's HTTP API (see `docs/api.md` and `infra/openapi.yaml`).
//!
//! One router, [`App::handle`], serves every route. The Lambda functions under `functions/`
//! call it through [`App::handle_lambda`]; the local server ([`local::serve`]) calls it for
//! each hyper request. Neither has routes of its own, so the two cannot drift apart.
#![forbid(unsafe_code)]

pub mod auth;
mod body;
mod error;
mod handlers;
pub mod local;
mod request;
mod routes;
mod telemetry;

use std::time::Instant;

use tracing::Instrument;

use eventstore_core::{
    EventLog, EventStore, NoProjections, ProjectionEngine, ProjectionStore, SnapshotStore,
    SubscriptionStore, Upcasters,
};
use eventstore_dynamodb::{Components, DynamoEventLog, DynamoProjectionStore};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

pub use auth::{AuthConfig, AuthMode, Caller, Permission, Tenant};
pub use error::{ApiError, RETRY_AFTER_SECONDS};
pub use routes::{match_route, Route, Side};
use telemetry::{emit_metrics, log_error};

/// Largest request body accepted: Lambda's synchronous payload limit. Valid appends are far
/// smaller (see `eventstore_core::limits`).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// Which routes an [`App`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// The write routes: appends, snapshot puts, subscription checkpoints (the
    /// `append-api` function).
    Write,
    /// The read routes only (the `read-api` function).
    Read,
    /// Every route (the local server).
    All,
}

impl Mount {
    fn serves(self, side: Side) -> bool {
        matches!(
            (self, side),
            (Mount::All, _) | (Mount::Write, Side::Write) | (Mount::Read, Side::Read)
        )
    }
}

/// The API over an event store, with the projections and subscription checkpoints of `P`
/// (none until [`App::with_projector`]).
pub struct App<L, P = NoProjections> {
    store: EventStore<L>,
    mount: Mount,
    upcasters: Upcasters,
    projector: Option<ProjectionEngine<L, P>>,
    auth: AuthConfig,
}

impl App<DynamoEventLog, DynamoProjectionStore> {
    /// The API as the deployed functions and the local server run it: the composition
    /// root's store, projector and upcasters.
    pub fn from_components(components: &Components, mount: Mount) -> Self {
        App::new(components.store(), mount)
            .with_projector(components.projector())
            .with_upcasters(components.registry.upcasters.clone())
    }
}

impl<L: EventLog + SnapshotStore> App<L> {
    pub fn new(store: EventStore<L>, mount: Mount) -> Self {
        Self {
            store,
            mount,
            upcasters: Upcasters::new(),
            projector: None,
            auth: AuthConfig::off(),
        }
    }
}

impl<L, P> App<L, P>
where
    L: EventLog + SnapshotStore,
    P: ProjectionStore + SubscriptionStore,
{
    /// The projections and subscription checkpoints the `/projections` and `/subscriptions`
    /// routes serve; without one, those routes answer 404.
    pub fn with_projector<Q>(self, projector: ProjectionEngine<L, Q>) -> App<L, Q> {
        App {
            store: self.store,
            mount: self.mount,
            upcasters: self.upcasters,
            projector: Some(projector),
            auth: self.auth,
        }
    }

    /// Who may do what (off until set: see [`AuthConfig::from_env`]).
    pub fn with_authorization(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    pub fn authorization(&self) -> &AuthConfig {
        &self.auth
    }

    /// The upcasters read routes apply when a request says `upcast=true`.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    pub fn store(&self) -> &EventStore<L> {
        &self.store
    }

    /// Entry point of the Lambda functions: takes the request id from the invocation.
    pub async fn handle_lambda(
        &self,
        request: Request,
    ) -> Result<Response<Body>, std::convert::Infallible> {
        let request_id = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
            _ => None,
        }
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_default();
        Ok(self.handle(request, &request_id).await)
    }

    /// Answers one request. Never fails: every error becomes its HTTP response here, and
    /// the outcome is logged with the request id.
    pub async fn handle(&self, request: Request, request_id: &str) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let span = tracing::info_span!("api.request", method = %method);
        let (route, caller, result) = self.dispatch(request).instrument(span).await;
        let response = result.unwrap_or_else(|err| {
            log_error(&err, request_id);
            err.into_response()
        });
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let route_name = route.as_ref().map_or("unmatched", |r| r.name());
        tracing::info!(
            request_id,
            method = %method,
            route = route_name,
            status = response.status().as_u16(),
            subject = caller.as_ref().and_then(Caller::subject),
            tenant = caller.as_ref().and_then(Caller::tenant).map(Tenant::as_str),
            elapsed_ms,
            "request handled"
        );
        emit_metrics(route.as_ref(), route_name, &response, elapsed_ms);
        response
    }

    /// Matches the route, then authorizes it: the one place every request is let in or
    /// refused, before its body is parsed or any table is read.
    async fn dispatch(
        &self,
        request: Request,
    ) -> (
        Option<Route>,
        Option<Caller>,
        Result<Response<Body>, ApiError>,
    ) {
        let caller = match Caller::resolve(&self.auth, &request) {
            Ok(caller) => caller,
            Err(refused) => return (None, None, Err(refused)),
        };
        let route = match match_route(request.method(), request.uri().path()) {
            Ok(Some(route)) if self.mount.serves(route.side()) => route,
            Ok(_) => {
                let err = ApiError::RouteNotFound {
                    method: request.method().to_string(),
                    path: request.uri().path().to_owned(),
                };
                return (None, Some(caller), Err(err));
            }
            Err(invalid) => return (None, Some(caller), Err(invalid.into())),
        };
        let result = match caller.authorize(&route) {
            Ok(()) => self.serve(&route, &caller, request).await,
            Err(refused) => Err(refused),
        };
        (Some(route), Some(caller), result)
    }
}
