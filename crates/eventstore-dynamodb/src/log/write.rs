//! Conditional writes of new events: one `PutItem` for a single event, one
//! `TransactWriteItems` for several, resent while throttled or contended.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use eventstore_core::{NewEvent, StoreError, StreamId, Timestamp, WriteConflict};

use super::DynamoEventLog;
use crate::error::{
    cancellation_codes, classify_cancellation, from_sdk, from_transaction, Cancellation,
};
use crate::io::{conflict_backoff, TRANSACTION_CONFLICT_ATTEMPTS};
use crate::item::new_item;
use crate::keys;

impl DynamoEventLog {
    pub(super) async fn put_one(
        &self,
        stream: &StreamId,
        version: u64,
        event: &NewEvent,
        created_at: Timestamp,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let item = new_item(stream, version, event, created_at)?;
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Ok(())),
                Err(SdkError::ServiceError(se))
                    if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
                {
                    return Ok(Err(WriteConflict::VersionTaken));
                }
                // A transaction is writing the same item right now: wait for it to settle,
                // then the condition decides.
                Err(SdkError::ServiceError(se))
                    if matches!(se.err(), PutItemError::TransactionConflictException(_))
                        && attempt + 1 < TRANSACTION_CONFLICT_ATTEMPTS =>
                {
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(from_sdk("PutItem", e)),
            }
        }
    }

    /// Whether the item at `version` exists, read consistently.
    pub(super) async fn version_exists(
        &self,
        stream: &StreamId,
        version: u64,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key(
                keys::PK,
                AttributeValue::S(keys::stream_pk(stream.as_str())),
            )
            .key(keys::SK, AttributeValue::S(keys::version_sk(version)))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", keys::PK)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", e))?;
        Ok(out.item.is_some())
    }

    pub(super) async fn transact(
        &self,
        stream: &StreamId,
        first: u64,
        events: &[NewEvent],
        created_at: Timestamp,
        check_previous: bool,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let pk = AttributeValue::S(keys::stream_pk(stream.as_str()));
        let mut actions = Vec::with_capacity(events.len() + 1);
        if check_previous {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key(keys::PK, pk.clone())
                .key(keys::SK, AttributeValue::S(keys::version_sk(first - 1)))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .build()
                .map_err(|e| StoreError::internal("building a condition check", e))?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
        }
        for (event, version) in events.iter().zip(first..) {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(new_item(stream, version, event, created_at)?))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .build()
                .map_err(|e| StoreError::internal("building a put", e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }

        for attempt in 0..TRANSACTION_CONFLICT_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            let Some(codes) = cancellation_codes(&err) else {
                return Err(from_transaction(err));
            };
            // The reasons come in the order of the actions: the check (if any), then the puts.
            let puts_from = usize::from(check_previous);
            if check_previous && codes.first().map(String::as_str) == Some("ConditionalCheckFailed")
            {
                return Ok(Err(WriteConflict::PreviousMissing));
            }
            if codes
                .iter()
                .skip(puts_from)
                .any(|c| c == "ConditionalCheckFailed")
            {
                return Ok(Err(WriteConflict::VersionTaken));
            }
            // Throttled, or another transaction held an item: nothing was written, so the
            // same transaction is safe to send again after a pause.
            let busy =
                classify_cancellation(codes.iter().map(String::as_str)) == Cancellation::Busy;
            if busy && attempt + 1 < TRANSACTION_CONFLICT_ATTEMPTS {
                tokio::time::sleep(conflict_backoff(attempt)).await;
                continue;
            }
            return Err(from_transaction(err));
        }
        Err(StoreError::Unavailable {
            message: "TransactWriteItems kept being cancelled by throttling or contention".into(),
            source: None,
        })
    }
}
