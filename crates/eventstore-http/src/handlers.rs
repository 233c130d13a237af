//! What each route does, once the router has matched and authorized it.

use eventstore_core::{
    EventLog, GlobalFilter, ProjectionEngine, ProjectionStore, RecordedEvent, SnapshotStore,
    SubscriptionStore,
};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use crate::telemetry::EventsWritten;
use crate::{body, error, request, ApiError, App, Caller, Route, MAX_BODY_BYTES};

impl<L, P> App<L, P>
where
    L: EventLog + SnapshotStore,
    P: ProjectionStore + SubscriptionStore,
{
    pub(crate) async fn serve(
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
        let (from, limit, wait) = (query.from()?, query.limit()?, query.wait()?);
        let page = self
            .store
            .read_global_waiting(filter, from, limit, wait)
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
