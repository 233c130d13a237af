use crate::ExpectedVersion;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request the store refuses before it touches storage. `field` names the offending input
/// the way the HTTP API spells it (`events[2].eventType`, `limit`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The one error type of the store. The first five variants are outcomes a caller acts
/// on; `Unavailable` and `Internal` are infrastructure failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid request: {0}")]
    Validation(#[from] ValidationError),

    #[error("{what} is {actual} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge {
        what: String,
        actual: usize,
        limit: usize,
    },

    #[error("stream {0} has no events")]
    StreamNotFound(String),

    #[error("wrong expected version: expected {expected}, stream is at version {current}")]
    WrongExpectedVersion {
        expected: ExpectedVersion,
        current: u64,
    },

    /// A snapshot older than the stored one was offered; it is not stored.
    #[error("a newer snapshot, at version {stored_version}, is already stored")]
    SnapshotOutdated { stored_version: u64 },

    /// Storage throttled or failed after the SDK's own retries, or an append kept losing
    /// races. Retrying later is safe: appends are idempotent by event id.
    #[error("storage unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    #[error("internal error: {message}")]
    Internal {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn internal(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An internal error with no underlying source, e.g. a stored item that breaks an invariant.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
            source: None,
        }
    }
}
