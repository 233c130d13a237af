//! How SDK failures become [`StoreError`]s.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use eventstore_core::StoreError;

/// Error codes that mean "too much load or a passing fault": worth retrying later.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Maps a failure that remained after the SDK's own retries. Throttling, 5xx answers,
/// timeouts and connection failures become `Unavailable`; everything else is `Internal`.
pub(crate) fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            se.raw().status().is_server_error()
                || err.code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        _ => false,
    };
    let message = format!(
        "DynamoDB {operation} failed: {}",
        err.code().unwrap_or("no error code")
    );
    if transient {
        StoreError::unavailable(message, err)
    } else {
        StoreError::internal(message, err)
    }
}
