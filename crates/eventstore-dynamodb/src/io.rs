//! The DynamoDB calls every part of the adapter shares: consistent reads of whole items,
//! batch reads that follow unprocessed keys, transactions guarded by conditions and resent
//! while throttled, and the one way attribute values are read out of an item.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use eventstore_core::StoreError;

use crate::error::{
    cancellation_codes, classify_cancellation, from_sdk, from_transaction, Cancellation,
};
use crate::keys;

/// An item as the SDK gives it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The number attribute `name` of `item`, if it holds one that fits a `u64`.
pub(crate) fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// The string attribute `name` of `item`, if it holds one.
pub(crate) fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// A string attribute value.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute value.
pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The key of an item of a `PK`/`SK` table.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
}

/// Attempts of a transaction that DynamoDB cancels for `TransactionConflict` (another
/// transaction touching the same item at the same moment) or for throttling, before giving
/// up as unavailable.
pub(crate) const TRANSACTION_CONFLICT_ATTEMPTS: u32 = 5;

/// Jittered wait before retrying a write that met a concurrent transaction: 5 ms up to
/// 20 ms doubling per attempt.
pub(crate) fn conflict_backoff(attempt: u32) -> Duration {
    Duration::from_millis(fastrand::u64(5..(20u64 << attempt.min(6))))
}

/// One whole item by its key, read consistently; `None` if it does not exist.
pub(crate) async fn get_consistent(
    client: &Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .consistent_read(true)
        .key(keys::PK, AttributeValue::S(pk.to_owned()))
        .key(keys::SK, AttributeValue::S(sk.to_owned()))
        .send()
        .await
        .map_err(|e| from_sdk("GetItem", e))?;
    Ok(out.item)
}

/// Every item of partition `pk`, in sort-key order, read consistently page after page (the
/// SDK's paginator: nothing here counts bytes).
pub(crate) async fn partition_items(
    client: &Client,
    table: &str,
    pk: &str,
) -> Result<Vec<Item>, StoreError> {
    let mut items = client
        .query()
        .table_name(table)
        .consistent_read(true)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", keys::PK)
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .into_paginator()
        .items()
        .send();
    let mut found = Vec::new();
    while let Some(item) = items.next().await {
        found.push(item.map_err(|e| from_sdk("Query", e))?);
    }
    Ok(found)
}

/// Reads `keys` from `table` consistently with BatchGetItem (at most 100 keys), following
/// unprocessed keys with backoff. Returns the items found, in no particular order.
pub(crate) async fn batch_get_consistent(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::new();
    if keys.is_empty() {
        return Ok(found);
    }
    let mut request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .build()
        .map_err(|e| StoreError::internal("building a BatchGetItem", e))?;
    for attempt in 0..10 {
        let out = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| from_sdk("BatchGetItem", e))?;
        found.extend(
            out.responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default(),
        );
        match out.unprocessed_keys.and_then(|mut u| u.remove(table)) {
            Some(rest) if !rest.keys().is_empty() => {
                tokio::time::sleep(conflict_backoff(attempt)).await;
                request = rest;
            }
            _ => return Ok(found),
        }
    }
    Err(StoreError::Unavailable {
        message: "BatchGetItem kept leaving keys unprocessed".into(),
        source: None,
    })
}

/// How a transaction whose conditions guard against other writers ended.
pub(crate) enum Sent {
    Committed,
    /// A condition failed, or another transaction touched the same items: what was read
    /// may be stale, so the caller re-reads rather than resending.
    Lost,
    /// Anything else, after resending throttled attempts ([`TRANSACTION_CONFLICT_ATTEMPTS`]
    /// in all): the caller inspects it or maps it with [`from_transaction`].
    Failed(Box<SdkError<TransactWriteItemsError, HttpResponse>>),
}

/// Sends a transaction whose conditions guard against other writers. A throttled attempt
/// wrote nothing and read nothing stale, so it is sent again after a pause.
pub(crate) async fn send_guarded(client: &Client, writes: Vec<TransactWriteItem>) -> Sent {
    let mut attempt = 0;
    loop {
        let err = match client
            .transact_write_items()
            .set_transact_items(Some(writes.clone()))
            .send()
            .await
        {
            Ok(_) => return Sent::Committed,
            Err(e) => e,
        };
        let Some(codes) = cancellation_codes(&err) else {
            return Sent::Failed(Box::new(err));
        };
        if codes
            .iter()
            .any(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict")
        {
            return Sent::Lost;
        }
        let busy = classify_cancellation(codes.iter().map(String::as_str)) == Cancellation::Busy;
        if !busy || attempt + 1 >= TRANSACTION_CONFLICT_ATTEMPTS {
            return Sent::Failed(Box::new(err));
        }
        tokio::time::sleep(conflict_backoff(attempt)).await;
        attempt += 1;
    }
}

/// [`send_guarded`] for callers that only need to know whether it committed: `Ok(false)`
/// when it lost to another writer; a failure (a persisting throttle is `Unavailable`) as
/// an error.
pub(crate) async fn transact_conditionally(
    client: &Client,
    writes: Vec<TransactWriteItem>,
) -> Result<bool, StoreError> {
    match send_guarded(client, writes).await {
        Sent::Committed => Ok(true),
        Sent::Lost => Ok(false),
        Sent::Failed(err) => Err(from_transaction(*err)),
    }
}

/// Whether an `UpdateItem` was refused only because its condition did not hold.
pub(crate) fn failed_condition(err: &SdkError<UpdateItemError, HttpResponse>) -> bool {
    err.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

/// The value of a counter item, 0 when it does not exist yet.
pub(crate) fn counter_value(item: Option<&Item>) -> Result<u64, StoreError> {
    let Some(item) = item else { return Ok(0) };
    number(item, keys::COUNTER_LAST)
        .ok_or_else(|| StoreError::corrupt("a counter item without a valid `last`"))
}
