//! Snapshots in the events table, in the stream's partition: one item, the newest snapshot,
//! at `STREAM#<id>` / `VERSION~SNAPSHOT` ([`keys::SNAPSHOT_SK`]). It sorts after every event,
//! so a repository load reads it and the events after it in one backward Query
//! ([`SnapshotStore::latest`]); version-range reads never meet it. A write is conditioned on
//! it: a newer snapshot is never replaced. Snapshots stored by earlier versions under
//! `SNAPSHOT` are still read where no new one is. Encoded with serde_dynamo, as event items
//! are.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use eventstore_core::{
    EventData, Snapshot, SnapshotStore, SnapshotWrite, StateTail, StoreError, StreamId, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::from_sdk;
use crate::io::{get_consistent, n, number, text, Item};
use crate::item::{decode_state, STATE_ATTRIBUTES};
use crate::keys;
use crate::log::{project, DynamoEventLog};

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

/// What a load reads of its one Query: the snapshot item's attributes, and what folding
/// needs of the events ([`STATE_ATTRIBUTES`]).
const LATEST_ATTRIBUTES: [&str; 8] = [
    STATE_ATTRIBUTES[0],
    STATE_ATTRIBUTES[1],
    STATE_ATTRIBUTES[2],
    STATE_ATTRIBUTES[3],
    STATE_ATTRIBUTES[4],
    keys::PK,
    keys::SNAPSHOT_STATE,
    keys::CREATED_AT,
];
// LATEST_ATTRIBUTES names every one of them.
const _: () = assert!(STATE_ATTRIBUTES.len() == 5);

impl DynamoEventLog {
    /// The snapshot item where versions before the stream-tail key kept it.
    async fn legacy_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let pk = keys::stream_pk(stream.as_str());
        get_consistent(&self.client, &self.table, &pk, keys::LEGACY_SNAPSHOT_SK)
            .await?
            .map(decode)
            .transpose()
    }
}

impl SnapshotStore for DynamoEventLog {
    /// The snapshot item; where none is, the one an earlier version stored under its old key.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let pk = keys::stream_pk(stream.as_str());
        match get_consistent(&self.client, &self.table, &pk, keys::SNAPSHOT_SK).await? {
            Some(item) => decode(item).map(Some),
            None => self.legacy_snapshot(stream).await,
        }
    }

    /// One backward Query from the end of the stream's partition, with a `Limit` of
    /// `within` + 1 items (DynamoDB reads, and charges for, every item up to the limit or
    /// 1 MB, even past the ones needed): the snapshot item sorts last, so it comes first,
    /// then the events from the newest down to the one the snapshot covers. That is the
    /// whole load when the snapshot is at most `within` - 1 events old, as a repository
    /// snapshotting every `within` events keeps it. The event at the snapshot's version is
    /// returned too (it proves that version exists); the caller skips it.
    ///
    /// Otherwise the page is incomplete: the caller reads forward from the snapshot, or,
    /// with no snapshot item at the tail, from one stored under the old key (a GetItem) or
    /// from version 1.
    async fn latest(
        &self,
        stream: &StreamId,
        within: usize,
    ) -> Result<Option<StateTail>, StoreError> {
        let query = self
            .stream_query(
                stream,
                keys::version_sk(1),
                keys::SNAPSHOT_SK.to_owned(),
                true,
            )
            .limit(i32::try_from(within.saturating_add(1)).unwrap_or(i32::MAX));
        let out = project(query, &LATEST_ATTRIBUTES)
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        let more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let mut items = out.items.unwrap_or_default().into_iter().peekable();
        let snapshot = match items.next_if(|i| text(i, keys::SK) == Some(keys::SNAPSHOT_SK)) {
            Some(item) => match decode(item) {
                Ok(snapshot) => Some(snapshot),
                // A broken snapshot must not block the aggregate: load from the events.
                Err(err) => {
                    tracing::warn!(%stream, error = %err, "snapshot unreadable; loading from the events");
                    return Ok(Some(StateTail {
                        snapshot: None,
                        events: Vec::new(),
                        complete: false,
                    }));
                }
            },
            None => None,
        };
        let floor = snapshot.as_ref().map_or(0, |s| s.version);
        let mut newest_first = Vec::new();
        let mut reached_floor = false;
        for item in items {
            // Snapshot copies an earlier version kept between the events are skipped.
            let Some(version) = text(&item, keys::SK).and_then(keys::parse_version_sk) else {
                continue;
            };
            newest_first.push(decode_state(item)?);
            if version <= floor {
                reached_floor = true;
                break;
            }
        }
        if reached_floor || !more {
            newest_first.reverse();
            return Ok(Some(StateTail {
                snapshot,
                events: newest_first,
                complete: true,
            }));
        }
        // The page ended before the events the load needs first.
        let snapshot = match snapshot {
            Some(snapshot) => Some(snapshot),
            None => self.legacy_snapshot(stream).await.unwrap_or_else(|err| {
                tracing::warn!(%stream, error = %err, "snapshot unreadable; loading from the events");
                None
            }),
        };
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
