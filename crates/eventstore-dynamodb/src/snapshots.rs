//! Snapshots in the events table: one item per stream, `STREAM#<id>` / `SNAPSHOT`, beside the
//! stream's events (the sort key keeps it out of every version range).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use eventstore_core::{
    EventData, Snapshot, SnapshotStore, SnapshotWrite, StoreError, StreamId, Timestamp,
};

use crate::error::from_sdk;
use crate::keys;
use crate::log::{get_consistent, DynamoEventLog};

type Item = HashMap<String, AttributeValue>;

fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn decode(item: &Item) -> Result<Snapshot, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored snapshot: bad {what}"));
    Ok(Snapshot {
        version: number(item, keys::VERSION).ok_or_else(|| bad("version"))?,
        schema_version: number(item, keys::SCHEMA_VERSION)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| bad("schemaVersion"))?,
        state: EventData::from_json(
            text(item, keys::SNAPSHOT_STATE)
                .ok_or_else(|| bad("state"))?
                .to_owned(),
            "state",
        )
        .map_err(|_| bad("state"))?,
        created_at: text(item, keys::CREATED_AT)
            .and_then(Timestamp::parse)
            .ok_or_else(|| bad("createdAt"))?,
    })
}

impl SnapshotStore for DynamoEventLog {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let pk = keys::stream_pk(stream.as_str());
        get_consistent(&self.client, &self.table, &pk, keys::SNAPSHOT_SK)
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: &Snapshot,
    ) -> Result<SnapshotWrite, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                keys::PK,
                AttributeValue::S(keys::stream_pk(stream.as_str())),
            )
            .item(keys::SK, AttributeValue::S(keys::SNAPSHOT_SK.to_owned()))
            .item(
                keys::VERSION,
                AttributeValue::N(snapshot.version.to_string()),
            )
            .item(
                keys::SCHEMA_VERSION,
                AttributeValue::N(snapshot.schema_version.to_string()),
            )
            .item(
                keys::SNAPSHOT_STATE,
                AttributeValue::S(snapshot.state.as_json().to_owned()),
            )
            .item(
                keys::CREATED_AT,
                AttributeValue::S(snapshot.created_at.to_string()),
            )
            // A newer snapshot is never replaced by an older one, whoever writes last.
            .condition_expression("attribute_not_exists(#pk) OR #v <= :v")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#v", keys::VERSION)
            .expression_attribute_values(":v", AttributeValue::N(snapshot.version.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(SnapshotWrite::Stored),
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                let stored_version = match se.err() {
                    PutItemError::ConditionalCheckFailedException(c) => {
                        c.item().and_then(|i| number(i, keys::VERSION))
                    }
                    _ => None,
                };
                Ok(SnapshotWrite::Outdated {
                    stored_version: stored_version.unwrap_or(snapshot.version),
                })
            }
            Err(e) => Err(from_sdk("PutItem", e)),
        }
    }
}
