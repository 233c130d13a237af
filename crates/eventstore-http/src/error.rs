//! The one place where errors become HTTP statuses and bodies.

use eventstore_core::{ExpectedVersion, StoreError, ValidationError};
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde_json::json;

/// Seconds a client should wait after a 503 before retrying.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// An error response of the API. Built from a [`StoreError`] or by the router itself.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No route matches the method and path.
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    /// The request body is larger than any valid request can be.
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The stream has no snapshot.
    #[error("stream {0} has no snapshot")]
    NoSnapshot(String),
    /// No such projection, row or subscription.
    #[error("{0}")]
    NotFound(String),
    /// A subscription checkpoint would move backwards (and `force` was not given).
    #[error("the checkpoint is at {current}; it does not move backwards without force")]
    CheckpointBackwards { current: u64 },
    /// The request carries no identity of the kind the API is configured for.
    #[error("{message}")]
    Unauthorized {
        /// The `WWW-Authenticate` scheme a client should use.
        scheme: &'static str,
        message: String,
    },
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::Store(StoreError::Validation(e))
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Store(e) => match e {
                StoreError::Validation(_) => StatusCode::BAD_REQUEST,
                StoreError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                StoreError::StreamNotFound(_) => StatusCode::NOT_FOUND,
                StoreError::WrongExpectedVersion { .. } => StatusCode::CONFLICT,
                StoreError::SnapshotOutdated { .. } => StatusCode::CONFLICT,
                StoreError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                StoreError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::RouteNotFound { .. } | Self::NoSnapshot(_) | Self::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::CheckpointBackwards { .. } => StatusCode::CONFLICT,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The JSON body. Messages of infrastructure errors are fixed strings: the details go to
    /// the log, never to the client.
    fn body(&self) -> serde_json::Value {
        let error = match self {
            Self::Store(StoreError::Validation(v)) => json!({
                "code": "InvalidRequest",
                "message": v.to_string(),
                "field": v.field,
            }),
            Self::Store(StoreError::PayloadTooLarge {
                what,
                actual,
                limit,
            }) => json!({
                "code": "PayloadTooLarge",
                "message": format!("{what} is {actual} bytes, over the limit of {limit} bytes"),
                "limit": limit,
            }),
            Self::BodyTooLarge { limit } => json!({
                "code": "PayloadTooLarge",
                "message": format!("the request body is over the limit of {limit} bytes"),
                "limit": limit,
            }),
            Self::Store(StoreError::StreamNotFound(stream)) => json!({
                "code": "StreamNotFound",
                "message": format!("stream '{stream}' has no events"),
            }),
            Self::Store(StoreError::WrongExpectedVersion { expected, current }) => json!({
                "code": "WrongExpectedVersion",
                "message": format!(
                    "expected the stream at {}, but it is at version {current}",
                    describe(*expected)
                ),
                "expectedVersion": expected,
                "currentVersion": current,
            }),
            Self::Store(StoreError::SnapshotOutdated { stored_version }) => json!({
                "code": "SnapshotOutdated",
                "message": format!("a newer snapshot, at version {stored_version}, is already stored"),
                "storedVersion": stored_version,
            }),
            Self::NotFound(message) => json!({
                "code": "NotFound",
                "message": message,
            }),
            Self::CheckpointBackwards { current } => json!({
                "code": "CheckpointBackwards",
                "message": format!("the checkpoint is at {current}; send \"force\": true to move it backwards"),
                "currentPosition": current,
            }),
            Self::NoSnapshot(stream) => json!({
                "code": "NotFound",
                "message": format!("stream '{stream}' has no snapshot"),
            }),
            Self::Store(StoreError::Unavailable { .. }) => json!({
                "code": "Unavailable",
                "message": "the store is busy or unavailable; retry after the Retry-After delay (appends are idempotent by event id)",
            }),
            Self::Store(StoreError::Internal { .. }) => json!({
                "code": "Internal",
                "message": "internal error",
            }),
            Self::Unauthorized { message, .. } => json!({
                "code": "Unauthorized",
                "message": message,
            }),
            Self::Forbidden(message) => json!({
                "code": "Forbidden",
                "message": message,
            }),
            Self::RouteNotFound { method, path } => json!({
                "code": "NotFound",
                "message": format!("no route for {method} {path}"),
            }),
        };
        json!({ "error": error })
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut response = json_response(status, &self.body());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if let Self::Unauthorized { scheme, .. } = self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        response
    }
}

fn describe(expected: ExpectedVersion) -> String {
    match expected {
        ExpectedVersion::Exact(0) | ExpectedVersion::NoStream => "no_stream (no events)".into(),
        ExpectedVersion::Exact(v) => format!("version {v}"),
        ExpectedVersion::StreamExists => "stream_exists (at least one event)".into(),
        ExpectedVersion::Any => "any version".into(),
    }
}

/// A JSON response. Serialising a `serde_json::Value` or the API's own types cannot fail;
/// should it ever, the client gets a bare 500 rather than a panic.
pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    // Text, not binary: API Gateway then passes it on without base64.
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":{"code":"Internal","message":"internal error"}}"#.to_owned(),
        ),
    };
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
