//! The event store's HTTP API (see `docs/api.md` and `infra/openapi.yaml`).
//!
//! One router, [`App::handle`], serves every route. The Lambda functions under `functions/`
//! call it through [`App::handle_lambda`]; the local server ([`local::serve`]) calls it for
//! each hyper request. Neither has routes of its own, so the two cannot drift apart.
#![forbid(unsafe_code)]

pub mod auth;
mod body;
mod error;
pub mod local;
mod request;
mod routes;
mod telemetry;

use std::time::Instant;

use eventstore_core::{
    EventLog, EventStore, GlobalFilter, NoProjections, ProjectionEngine, ProjectionStore,
    RecordedEvent, SnapshotStore, SubscriptionStore, Upcasters,
};
use eventstore_dynamodb::{Components, DynamoEventLog, DynamoProjectionStore};
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

pub use auth::{AuthConfig, AuthMode, Caller, Permission, Tenant};
pub use error::{ApiError, RETRY_AFTER_SECONDS};
pub use routes::{match_route, Route, Side};
use telemetry::{emit_metrics, log_error, EventsWritten};

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
        let (route, caller, result) = self.dispatch(request).await;
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

    async fn serve(
        &self,
        route: &Route,
        caller: &Caller,
        request: Request,
    ) -> Result<Response<Body>, ApiError> {
        let query = request::Query::parse(request.uri().query())?;
        match route {
            Route::Append(stream) => {
                let parsed = request::parse_append(bounded(&request)?)?;
                caller.authorize_events(&parsed.batch)?;
                let out = self
                    .store
                    .append(stream, parsed.expected, &parsed.batch)
                    .await?;
                let status = if out.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let mut response = error::json_response(
                    status,
                    &body::Appended {
                        stream_id: out.stream_id.as_str(),
                        from_version: out.from_version,
                        to_version: out.to_version,
                        event_ids: &out.event_ids,
                    },
                );
                let written = if out.created { out.event_ids.len() } else { 0 };
                response.extensions_mut().insert(EventsWritten(written));
                Ok(response)
            }
            Route::PutSnapshot(stream) => {
                let parsed = request::parse_snapshot(bounded(&request)?)?;
                let snapshot = self
                    .store
                    .put_snapshot(stream, parsed.version, parsed.schema_version, parsed.state)
                    .await?;
                Ok(error::json_response(
                    StatusCode::OK,
                    &body::SnapshotBody::new(stream.as_str(), &snapshot),
                ))
            }
            Route::GetSnapshot(stream) => match self.store.get_snapshot(stream).await? {
                Some(snapshot) => Ok(error::json_response(
                    StatusCode::OK,
                    &body::SnapshotBody::new(stream.as_str(), &snapshot),
                )),
                None => Err(ApiError::NoSnapshot(stream.to_string())),
            },
            Route::ReadStream(stream) => {
                let page = self.store.read_stream(stream, query.stream_read()?).await?;
                let events = self.upcast(page.events, &query)?;
                Ok(error::json_response(
                    StatusCode::OK,
                    &body::StreamEvents {
                        stream_id: page.stream_id.as_str(),
                        events: &events,
                        next: page.next,
                    },
                ))
            }
            Route::StreamInfo(stream) => {
                let info = self.store.stream_info(stream).await?;
                Ok(error::json_response(
                    StatusCode::OK,
                    &body::StreamInfo {
                        stream_id: info.stream_id.as_str(),
                        category: info.category.as_str(),
                        version: info.version,
                    },
                ))
            }
            Route::ProjectionStatus(name) => {
                let projector = self.projector(name)?;
                let checkpoint = projector.checkpoint(name).await?;
                let head = projector.head().await?;
                Ok(error::json_response(
                    StatusCode::OK,
                    &body::ProjectionStatus {
                        name,
                        checkpoint: checkpoint.position,
                        head,
                        lag: head.saturating_sub(checkpoint.position),
                        parked: checkpoint.parked,
                        generation: checkpoint.generation,
                    },
                ))
            }
            Route::ProjectionRow(name, key) => {
                let projector = self.projector(name)?;
                let (rows, next) = projector
                    .rows(name, key, query.after(), query.limit()?)
                    .await?;
                let missing = || ApiError::NotFound(format!("projection {name} has no row {key}"));
                let single = match rows.as_slice() {
                    [] if query.after().is_none() => return Err(missing()),
                    [(item, value)] if item.is_empty() => Some(value),
                    _ => None,
                };
                let row = match single {
                    Some(value) => body::ProjectionRow {
                        projection: name,
                        key,
                        value: Some(value),
                        items: None,
                        next: None,
                    },
                    None => body::ProjectionRow {
                        projection: name,
                        key,
                        value: None,
                        items: Some(
                            rows.iter()
                                .map(|(item, value)| body::RowItem { item, value })
                                .collect(),
                        ),
                        next: Some(next.as_deref()),
                    },
                };
                Ok(error::json_response(StatusCode::OK, &row))
            }
            Route::PutSubscription(name) => {
                let parsed = request::parse_subscription(bounded(&request)?)?;
                caller.authorize_force(parsed.force)?;
                let projector = self.subscriptions()?;
                match projector
                    .save_subscription(name, parsed.position, parsed.force)
                    .await?
                {
                    Ok(()) => Ok(error::json_response(
                        StatusCode::OK,
                        &body::Subscription {
                            name,
                            position: parsed.position,
                        },
                    )),
                    Err(current) => Err(ApiError::CheckpointBackwards { current }),
                }
            }
            Route::GetSubscription(name) => match self.subscriptions()?.subscription(name).await? {
                Some(position) => Ok(error::json_response(
                    StatusCode::OK,
                    &body::Subscription { name, position },
                )),
                None => Err(ApiError::NotFound(format!("no subscription {name}"))),
            },
            Route::ReadAll => self.global(&GlobalFilter::All, &query).await,
            Route::ReadType(t) => {
                self.global(&GlobalFilter::EventType(t.clone()), &query)
                    .await
            }
            Route::ReadCategory(c) => {
                self.global(&GlobalFilter::Category(c.clone()), &query)
                    .await
            }
        }
    }

    async fn global(
        &self,
        filter: &GlobalFilter,
        query: &request::Query,
    ) -> Result<Response<Body>, ApiError> {
        let page = self
            .store
            .read_global(filter, query.from()?, query.limit()?)
            .await?;
        let events = self.upcast(page.events, query)?;
        Ok(error::json_response(
            StatusCode::OK,
            &body::GlobalEvents {
                events: &events,
                next: page.next,
            },
        ))
    }

    fn projector(&self, name: &str) -> Result<&ProjectionEngine<L, P>, ApiError> {
        self.projector
            .as_ref()
            .filter(|p| p.projection(name).is_some())
            .ok_or_else(|| ApiError::NotFound(format!("no projection {name}")))
    }

    fn subscriptions(&self) -> Result<&P, ApiError> {
        self.projector
            .as_ref()
            .map(ProjectionEngine::store)
            .ok_or_else(|| ApiError::NotFound("subscriptions are not configured".into()))
    }

    /// The events as stored, or brought up to their newest schema when the request asks.
    fn upcast(
        &self,
        events: Vec<RecordedEvent>,
        query: &request::Query,
    ) -> Result<Vec<RecordedEvent>, ApiError> {
        if !query.upcast()? {
            return Ok(events);
        }
        Ok(events
            .into_iter()
            .map(|e| self.upcasters.upcast(e))
            .collect::<Result<_, _>>()?)
    }
}

/// The request body, refused early when no valid request can be that large.
fn bounded(request: &Request) -> Result<&[u8], ApiError> {
    let body = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::BodyTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(body)
}
