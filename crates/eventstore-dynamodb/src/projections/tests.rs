//! Refusals for size told apart from other DynamoDB errors.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use super::*;

#[test]
fn only_size_and_length_validation_errors_are_refusals_for_size() {
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;
    let response = || {
        HttpResponse::new(
            400u16.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        )
    };
    let validation = |message: &str| {
        SdkError::service_error(
            TransactWriteItemsError::generic(
                aws_sdk_dynamodb::error::ErrorMetadata::builder()
                    .code("ValidationException")
                    .message(message)
                    .build(),
            ),
            response(),
        )
    };
    assert_eq!(
        size_refusal(&validation(
            "Item size has exceeded the maximum allowed size"
        )),
        Some("ValidationException: Item size has exceeded the maximum allowed size".into())
    );
    assert_eq!(
        size_refusal(&validation(
            "Member must have length less than or equal to 100"
        )),
        Some("ValidationException: Member must have length less than or equal to 100".into())
    );
    // The projector's own mistake is no reason to park an event.
    assert_eq!(
        size_refusal(&validation(
            "Value provided in ExpressionAttributeNames unused in expressions"
        )),
        None
    );
    let cancelled = |code: &str| {
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .cancellation_reasons(CancellationReason::builder().code("None").build())
                    .cancellation_reasons(
                        CancellationReason::builder()
                            .code(code)
                            .message("Item size has exceeded the maximum allowed size")
                            .build(),
                    )
                    .build(),
            ),
            response(),
        )
    };
    assert_eq!(
        size_refusal(&cancelled("ValidationError")),
        Some("ValidationError: Item size has exceeded the maximum allowed size".into())
    );
    assert_eq!(size_refusal(&cancelled("ConditionalCheckFailed")), None);
}
