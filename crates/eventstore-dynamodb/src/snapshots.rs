//! Snapshots in the events table, beside the stream's events. The newest is the item
//! `STREAM#<id>` / `SNAPSHOT` (what `GET /streams/{id}/snapshot` reads, and what a write is
//! conditioned on: a newer snapshot is never replaced). Each snapshot stored is also copied
//! to `VERSION#<version>#SNAPSHOT`, right after the version it covers, so that a repository
//! load reads the newest copy and the events after it in one backward Query
//! ([`SnapshotStore::latest`]). Event reads filter copies out. Encoded with serde_dynamo, as
//! event items are.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use eventstore_core::{
    EventData, Snapshot, SnapshotStore, SnapshotWrite, StateTail, StoreError, StreamId, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::from_sdk;
use crate::io::{get_consistent, n, number, text, Item};
use crate::item::decode as decode_event;
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

fn encode(stream: &StreamId, snapshot: &Snapshot, sk: String) -> Result<Item, StoreError> {
    serde_dynamo::to_item(SnapshotItem {
        pk: keys::stream_pk(stream.as_str()),
        sk,
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

    /// One backward Query from the stream's end for `within` events and a copy (a `Limit`,
    /// because DynamoDB reads, and charges for, every item up to it or 1 MB, even past the
    /// copy): the events newest first down to the newest snapshot copy. If the page holds the
    /// copy, or the whole stream, that is the load. Otherwise the newest copy is further
    /// back: the snapshot item (also the one snapshots stored before copies existed) is read,
    /// and the caller reads the events after it forward.
    async fn latest(
        &self,
        stream: &StreamId,
        within: usize,
    ) -> Result<Option<StateTail>, StoreError> {
        let out = self
            .stream_query(
                stream,
                keys::version_sk(1),
                keys::snapshot_copy_sk(u64::MAX),
                true,
            )
            .limit(i32::try_from(within.saturating_add(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        let mut newest_first = Vec::new();
        for item in out.items.unwrap_or_default() {
            let sk = text(&item, keys::SK).unwrap_or_default();
            if keys::parse_snapshot_copy_sk(sk).is_some() {
                return Ok(Some(match decode(item) {
                    Ok(snapshot) => {
                        newest_first.reverse();
                        StateTail {
                            snapshot: Some(snapshot),
                            events: newest_first,
                            complete: true,
                        }
                    }
                    // A broken copy must not block the aggregate: load from the events.
                    Err(err) => {
                        tracing::warn!(%stream, error = %err, "snapshot copy unreadable; loading from the events");
                        StateTail {
                            snapshot: None,
                            events: Vec::new(),
                            complete: false,
                        }
                    }
                }));
            }
            newest_first.push(decode_event(item)?);
        }
        if out.last_evaluated_key.is_none_or(|k| k.is_empty()) {
            // The whole stream, and no copy in it.
            newest_first.reverse();
            return Ok(Some(StateTail {
                snapshot: None,
                events: newest_first,
                complete: true,
            }));
        }
        let snapshot = self.load_snapshot(stream).await.unwrap_or_else(|err| {
            tracing::warn!(%stream, error = %err, "snapshot unreadable; loading from the events");
            None
        });
        Ok(Some(StateTail {
            snapshot,
            events: Vec::new(),
            complete: false,
        }))
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
            .set_item(Some(encode(
                stream,
                snapshot,
                keys::SNAPSHOT_SK.to_owned(),
            )?))
            // A newer snapshot is never replaced by an older one, whoever writes last.
            .condition_expression("attribute_not_exists(#pk) OR #v <= :v")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#v", keys::VERSION)
            .expression_attribute_values(":v", n(snapshot.version))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => {
                // The copy for loads. Unconditional: copies are never read but the newest
                // below the stream's end, and one at this version holds this state. Should
                // it fail, loads fall back to the item above, one GetItem later.
                let copy = encode(stream, snapshot, keys::snapshot_copy_sk(snapshot.version))?;
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(copy))
                    .send()
                    .await
                    .map_err(|e| from_sdk("PutItem", e))?;
                Ok(SnapshotWrite::Stored)
            }
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
