//! What each request leaves behind: its metrics (appends and 503s) and, for failures, its
//! error chain in the log (never in the response).

use eventstore_core::StoreError;
use eventstore_dynamodb::metrics::{self, Metrics};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use crate::{ApiError, Route};

/// How many events an append wrote, carried from `serve` to the metrics on the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventsWritten(pub(crate) usize);

/// The request's metrics: for appends, events written and latency; for every route, a 503.
pub(crate) fn emit_metrics(
    route: Option<&Route>,
    name: &str,
    response: &Response<Body>,
    elapsed_ms: u64,
) {
    let unavailable = response.status() == StatusCode::SERVICE_UNAVAILABLE;
    if !unavailable && !matches!(route, Some(Route::Append(_))) {
        // Reads have no metrics of their own: nothing to build on their path.
        return;
    }
    let mut metrics = Metrics::new().dimension("Route", name);
    if let Some(Route::Append(_)) = route {
        let written = response
            .extensions()
            .get::<EventsWritten>()
            .map_or(0, |w| w.0);
        metrics
            .put(&metrics::EVENTS_APPENDED, written as f64)
            .put(&metrics::APPEND_LATENCY, elapsed_ms as f64);
    }
    if unavailable {
        metrics.put(&metrics::REQUESTS_UNAVAILABLE, 1.0);
    }
    metrics.emit();
}

pub(crate) fn log_error(err: &ApiError, request_id: &str) {
    match err {
        ApiError::Store(StoreError::Internal { .. } | StoreError::Unavailable { .. }) => {
            // The full chain goes to the log only; the client sees a fixed message.
            let mut chain = String::new();
            let mut source: Option<&dyn std::error::Error> = Some(err);
            while let Some(e) = source {
                if !chain.is_empty() {
                    chain.push_str(": ");
                }
                chain.push_str(&e.to_string());
                source = e.source();
            }
            tracing::error!(request_id, error = %chain, "request failed");
        }
        // Refusals by authorization are worth an audit line; bad input is not.
        ApiError::Unauthorized { .. } | ApiError::Forbidden(_) => {
            tracing::info!(request_id, error = %err, "request refused by authorization")
        }
        _ => tracing::debug!(request_id, error = %err, "request refused"),
    }
}
