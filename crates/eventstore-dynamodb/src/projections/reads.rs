//! What readers and operators see: parked events, rows, and subscriber checkpoints. The
//! parked list is whole (the SDK's paginator); rows are read a page at a time.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use eventstore_core::projection::port::Parked;
use eventstore_core::{StoreError, SubscriptionStore};
use serde_json::Value;

use super::DynamoProjectionStore;
use crate::error::from_sdk;
use crate::io::{get_consistent, key, n, number, partition_items, s, text, Item};
use crate::keys;

pub(super) async fn parked(
    store: &DynamoProjectionStore,
    name: &str,
    generation: u64,
) -> Result<Vec<Parked>, StoreError> {
    let mut found = parked_under(store, &keys::parked_pk(name, generation)).await?;
    if generation == 1 {
        found.extend(parked_under(store, &keys::legacy_parked_pk(name)).await?);
        found.sort_by_key(|p| p.position);
        found.dedup_by_key(|p| p.position);
    }
    Ok(found)
}

async fn parked_under(store: &DynamoProjectionStore, pk: &str) -> Result<Vec<Parked>, StoreError> {
    let items = partition_items(&store.client, &store.tables.checkpoints, pk).await?;
    Ok(items
        .iter()
        .map(|item| {
            let field = |k: &str| text(item, k).unwrap_or_default().to_owned();
            Parked {
                position: text(item, keys::SK)
                    .and_then(|sk| sk.parse().ok())
                    .unwrap_or(0),
                event_id: field(keys::EVENT_ID),
                error: field(keys::ERROR),
            }
        })
        .collect())
}

pub(super) async fn rows(
    store: &DynamoProjectionStore,
    name: &str,
    generation: u64,
    row_key: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<(String, Value)>, Option<String>), StoreError> {
    let pk = keys::rows_pk(name, generation, row_key);
    let mut rows = Vec::new();
    let mut start: Option<Item> = after.map(|item| key(&pk, keys::row_sk(item)));
    loop {
        let out = store
            .client
            .query()
            .table_name(&store.tables.rows)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":pk", s(&pk))
            .limit(i32::try_from(limit + 1 - rows.len()).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        for item in out.items.unwrap_or_default() {
            let (Some(sk), Some(value)) = (text(&item, keys::SK), text(&item, keys::ROW_VALUE))
            else {
                continue;
            };
            if rows.len() == limit {
                let next = rows.last().map(|(item, _): &(String, Value)| item.clone());
                return Ok((rows, next));
            }
            let value = serde_json::from_str(value)
                .map_err(|e| StoreError::internal("decoding a projection row", e))?;
            rows.push((keys::row_item(sk).to_owned(), value));
        }
        // Not the paginator: a page stops at `limit`, and the next page of the caller
        // starts after the last row handed out.
        match out.last_evaluated_key.filter(|k| !k.is_empty()) {
            Some(key) => start = Some(key),
            None => return Ok((rows, None)),
        }
    }
}

impl SubscriptionStore for DynamoProjectionStore {
    async fn subscription(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let item = get_consistent(
            &self.client,
            &self.tables.checkpoints,
            &keys::subscription_pk(name),
            keys::CHECKPOINT_SK,
        )
        .await?;
        Ok(item.map(|item| number(&item, keys::POSITION).unwrap_or(0)))
    }

    async fn save_subscription(
        &self,
        name: &str,
        position: u64,
        force: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.checkpoints)
            .set_item(Some(key(keys::subscription_pk(name), keys::CHECKPOINT_SK)))
            .item(keys::POSITION, n(position));
        if !force {
            put = put
                .condition_expression("attribute_not_exists(#pos) OR #pos <= :pos")
                .expression_attribute_names("#pos", keys::POSITION)
                .expression_attribute_values(":pos", n(position))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
        }
        match put.send().await {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(se)) => match se.err() {
                PutItemError::ConditionalCheckFailedException(c) => Ok(Err(c
                    .item()
                    .and_then(|i| number(i, keys::POSITION))
                    .unwrap_or(position))),
                _ => Err(from_sdk("PutItem", SdkError::ServiceError(se))),
            },
            Err(e) => Err(from_sdk("PutItem", e)),
        }
    }
}
