//! How SDK failures become [`StoreError`]s.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
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

/// Cancellation reasons that say DynamoDB was too busy to run the transaction, not that a
/// condition failed: `ThrottlingError` (an on-demand table scaling up),
/// `ProvisionedThroughputExceeded`, and `TransactionConflict` (another transaction held one
/// of the items). Retrying later is right for all three.
const TRANSIENT_CANCELLATIONS: &[&str] = &[
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "TransactionConflict",
];

/// What a cancelled `TransactWriteItems` means to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancellation {
    /// One of the transaction's own conditions failed (another writer got there first).
    ConditionFailed,
    /// DynamoDB was busy: throttled, or another transaction held an item. Back off and retry.
    Busy,
    /// Anything else (`ValidationError`, `ItemCollectionSizeLimitExceeded`, ...).
    Refused,
}

/// Classifies the cancellation reasons of a transaction (in the order of its actions).
/// A failed condition wins over a busy item: re-reading is then the right answer.
pub(crate) fn classify_cancellation<'a>(codes: impl IntoIterator<Item = &'a str>) -> Cancellation {
    let mut busy = false;
    let mut refused = false;
    for code in codes {
        match code {
            "ConditionalCheckFailed" => return Cancellation::ConditionFailed,
            c if TRANSIENT_CANCELLATIONS.contains(&c) => busy = true,
            "None" | "" => {}
            _ => refused = true,
        }
    }
    if refused {
        Cancellation::Refused
    } else if busy {
        Cancellation::Busy
    } else {
        Cancellation::Refused
    }
}

/// The cancellation reason codes of a failed `TransactWriteItems`, `None` when it failed
/// for another cause.
pub(crate) fn cancellation_codes(
    err: &SdkError<TransactWriteItemsError, HttpResponse>,
) -> Option<Vec<String>> {
    match err {
        SdkError::ServiceError(se) => match se.err() {
            TransactWriteItemsError::TransactionCanceledException(c) => Some(
                c.cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_owned())
                    .collect(),
            ),
            _ => None,
        },
        _ => None,
    }
}

/// Maps a `TransactWriteItems` failure that remained after every retry: a cancellation for
/// throttling or contention is `Unavailable` (503 with `Retry-After`), like a throttled
/// single write; the rest as [`from_sdk`].
pub(crate) fn from_transaction(err: SdkError<TransactWriteItemsError, HttpResponse>) -> StoreError {
    if let Some(codes) = cancellation_codes(&err) {
        if classify_cancellation(codes.iter().map(String::as_str)) == Cancellation::Busy {
            let message = format!(
                "DynamoDB TransactWriteItems was cancelled: {}",
                codes.join(", ")
            );
            return StoreError::unavailable(message, err);
        }
    }
    from_sdk("TransactWriteItems", err)
}

/// The reason DynamoDB refused a transaction as too large, if it did: a
/// `ValidationException` about a size or a length (too many bytes, too many actions), or a
/// cancellation with a `ValidationError` reason (an item over 400 KB). Other validation
/// errors are the projector's own faults and no reason to park an event.
pub(crate) fn size_refusal(
    err: &SdkError<TransactWriteItemsError, HttpResponse>,
) -> Option<String> {
    let SdkError::ServiceError(se) = err else {
        return None;
    };
    match se.err() {
        TransactWriteItemsError::TransactionCanceledException(c) => c
            .cancellation_reasons()
            .iter()
            .find(|r| r.code() == Some("ValidationError"))
            .map(|r| format!("ValidationError: {}", r.message().unwrap_or("no message"))),
        other if other.code() == Some("ValidationException") => {
            let message = other.message().unwrap_or("no message");
            let lower = message.to_ascii_lowercase();
            (lower.contains("size") || lower.contains("length"))
                .then(|| format!("ValidationException: {message}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellations_are_classified_by_their_reasons() {
        use Cancellation::*;
        for (codes, want) in [
            (vec!["None", "ConditionalCheckFailed"], ConditionFailed),
            (
                vec!["TransactionConflict", "ConditionalCheckFailed"],
                ConditionFailed,
            ),
            (vec!["None", "ThrottlingError"], Busy),
            (vec!["ProvisionedThroughputExceeded", "None"], Busy),
            (vec!["TransactionConflict"], Busy),
            (vec!["ValidationError", "None"], Refused),
            (
                vec!["ThrottlingError", "ItemCollectionSizeLimitExceeded"],
                Refused,
            ),
            (vec!["None"], Refused),
            (vec![], Refused),
        ] {
            assert_eq!(classify_cancellation(codes.clone()), want, "{codes:?}");
        }
    }
}
