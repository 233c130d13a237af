//! Snapshots in the events table: one item per stream, `STREAM#<id>` / `SNAPSHOT`, beside the
//! stream's events (the sort key keeps it out of every version range). Encoded with
//! serde_dynamo, as event items are.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use eventstore_core::{
    EventData, Snapshot, SnapshotStore, SnapshotWrite, StoreError, StreamId, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::from_sdk;
use crate::io::{get_consistent, n, number, Item};
use crate::keys;
use crate::log::DynamoEventLog;

/// A snapshot item. The state is the exact JSON text saved, as event data is.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    version: u64,
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    state: String,
    #[serde(rename = "createdAt")]
    created_at: String,
}

fn encode(stream: &StreamId, snapshot: &Snapshot) -> Result<Item, StoreError> {
    serde_dynamo::to_item(SnapshotItem {
        pk: keys::stream_pk(stream.as_str()),
        sk: keys::SNAPSHOT_SK.to_owned(),
        version: snapshot.version,
        schema_version: snapshot.schema_version,
        state: snapshot.state.as_json().to_owned(),
        created_at: snapshot.created_at.to_string(),
    })
    .map_err(|e| StoreError::internal("encoding a snapshot item", e))
}

fn decode(item: Item) -> Result<Snapshot, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored snapshot: bad {what}"));
    let item: SnapshotItem = serde_dynamo::from_item(item).map_err(|_| bad("item"))?;
    Ok(Snapshot {
        version: item.version,
        schema_version: item.schema_version,
        state: EventData::from_json(item.state, "state").map_err(|_| bad("state"))?,
        created_at: Timestamp::parse(&item.created_at).ok_or_else(|| bad("createdAt"))?,
    })
}

impl SnapshotStore for DynamoEventLog {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let pk = keys::stream_pk(stream.as_str());
        get_consistent(&self.client, &self.table, &pk, keys::SNAPSHOT_SK)
            .await?
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
            .set_item(Some(encode(stream, snapshot)?))
            // A newer snapshot is never replaced by an older one, whoever writes last.
            .condition_expression("attribute_not_exists(#pk) OR #v <= :v")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#v", keys::VERSION)
            .expression_attribute_values(":v", n(snapshot.version))
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
