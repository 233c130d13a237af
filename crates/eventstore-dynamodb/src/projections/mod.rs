//! Projections on DynamoDB: the core's [`ProjectionStore`] on two tables, rows and
//! checkpoints (keys in [`crate::keys`]). What needs DynamoDB is here: each commit is one
//! `TransactWriteItems` of the changed rows and the checkpoint update, conditioned on the
//! checkpoint as the engine read it, within DynamoDB's 100 actions, 4 MB and 400 KB per
//! item. The engine itself (steps, poison policy, rebuild) is the core's
//! [`eventstore_core::ProjectionEngine`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use eventstore_core::projection::port::{Commit, CommitLimits, ParkedEvent, Slot};
use eventstore_core::{
    Checkpoint, Projection, ProjectionEngine, ProjectionStore, RowId, Rows, StoreError,
};
use serde_json::Value;

use crate::error::{from_transaction, size_refusal};
use crate::io::{
    batch_get_consistent, get_consistent, key, n, number, s, send_guarded, text,
    transact_conditionally, Item, Sent,
};
use crate::keys;
use crate::log::DynamoEventLog;

mod reads;
mod rebuild;
mod replay;

/// The projection engine on DynamoDB.
pub type Projector = ProjectionEngine<DynamoEventLog, DynamoProjectionStore>;

/// A projector over `log`'s events, keeping rows and checkpoints in `tables`.
pub fn projector(
    log: DynamoEventLog,
    tables: ProjectionTables,
    projections: Vec<Arc<dyn Projection>>,
) -> Projector {
    let store = DynamoProjectionStore::new(log.client.clone(), tables);
    ProjectionEngine::new(log, store, projections)
}

/// DynamoDB's limits on one transaction: 100 actions (99 rows beside the checkpoint) and
/// 4 MB, of which a step uses 3 MiB to leave room for the estimate's error; 400 KB per item.
const LIMITS: CommitLimits = CommitLimits {
    rows: 99,
    bytes: 3 * 1024 * 1024,
    row_bytes: 400 * 1024,
    storage: "DynamoDB",
    row_limit: "DynamoDB's 400 KB item limit",
};

/// The tables projections use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionTables {
    /// Rows of every projection (`PROJECTIONS_TABLE`).
    pub rows: String,
    /// Checkpoints, parked events and subscriber checkpoints (`CHECKPOINTS_TABLE`).
    pub checkpoints: String,
}

/// Projection rows and checkpoints in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoProjectionStore {
    client: Client,
    tables: ProjectionTables,
}

/// The partition key of a checkpoint item.
fn checkpoint_pk(slot: &Slot) -> String {
    match slot {
        Slot::Live(name) => keys::checkpoint_pk(name),
        Slot::Rebuild(name) => keys::rebuild_pk(name),
    }
}

fn decode_checkpoint(item: &Item) -> Checkpoint {
    Checkpoint {
        position: number(item, keys::POSITION).unwrap_or(0),
        generation: number(item, keys::GENERATION).unwrap_or(0).max(1),
        parked: number(item, keys::PARKED).unwrap_or(0),
        failures: number(item, keys::FAILURES).map_or(0, |f| u32::try_from(f).unwrap_or(u32::MAX)),
    }
}

impl DynamoProjectionStore {
    pub fn new(client: Client, tables: ProjectionTables) -> Self {
        Self { client, tables }
    }

    pub fn tables(&self) -> &ProjectionTables {
        &self.tables
    }

    async fn checkpoint_item(&self, pk: &str) -> Result<Option<Item>, StoreError> {
        get_consistent(
            &self.client,
            &self.tables.checkpoints,
            pk,
            keys::CHECKPOINT_SK,
        )
        .await
    }

    /// The checkpoint update, conditioned on the checkpoint as it was read.
    fn checkpoint_update(
        &self,
        slot: &Slot,
        read: Checkpoint,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.tables.checkpoints)
            .set_key(Some(key(checkpoint_pk(slot), keys::CHECKPOINT_SK)))
            .update_expression(expression)
            .expression_attribute_names("#pos", keys::POSITION)
            .expression_attribute_names("#gen", keys::GENERATION)
            .expression_attribute_names("#parked", keys::PARKED)
            .expression_attribute_names("#fail", keys::FAILURES)
            .expression_attribute_values(":gen", n(read.generation))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":oldfail", n(u64::from(read.failures)));
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        // DynamoDB refuses names an expression does not use.
        if expression.contains("#attempt") {
            update = update.expression_attribute_names("#attempt", keys::FAILED_ATTEMPT);
        }
        // The live checkpoint is created by its first write. A rebuild's never is: it
        // exists from the rebuild's start until the switch deletes it, and recreating it
        // after the switch would replay into the generation just made live.
        update = if read.position == 0 && matches!(slot, Slot::Live(_)) {
            update.condition_expression(
                "(attribute_not_exists(#pos) OR #pos = :zero) AND (attribute_not_exists(#fail) OR #fail = :oldfail) AND (attribute_not_exists(#gen) OR #gen = :gen)",
            )
        } else {
            update
                .condition_expression("#pos = :old AND #gen = :gen AND #fail = :oldfail")
                .expression_attribute_values(":old", n(read.position))
        };
        let update = update
            .build()
            .map_err(|e| StoreError::internal("building an Update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn row_write(
        &self,
        name: &str,
        generation: u64,
        position: u64,
        row: &RowId,
        value: Option<&Value>,
    ) -> Result<TransactWriteItem, StoreError> {
        let (pk, sk) = keys::row_key(name, generation, row);
        Ok(match value {
            Some(value) => {
                let text = serde_json::to_string(value)
                    .map_err(|e| StoreError::internal("encoding a projection row", e))?;
                let put = Put::builder()
                    .table_name(&self.tables.rows)
                    .set_item(Some(key(pk, sk)))
                    .item(keys::ROW_VALUE, s(text))
                    .item(keys::POSITION, n(position))
                    .build()
                    .map_err(|e| StoreError::internal("building a Put", e))?;
                TransactWriteItem::builder().put(put).build()
            }
            None => {
                let delete = Delete::builder()
                    .table_name(&self.tables.rows)
                    .set_key(Some(key(pk, sk)))
                    .build()
                    .map_err(|e| StoreError::internal("building a Delete", e))?;
                TransactWriteItem::builder().delete(delete).build()
            }
        })
    }

    /// `true` if committed; `false` if a condition failed (another projector moved first).
    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        transact_conditionally(&self.client, writes).await
    }
}

impl ProjectionStore for DynamoProjectionStore {
    fn limits(&self) -> CommitLimits {
        LIMITS
    }

    /// The size DynamoDB counts for a row item: attribute names and values (a deleted
    /// row, its key), plus a margin for number encoding.
    fn row_size(
        &self,
        name: &str,
        generation: u64,
        row: &RowId,
        value: Option<&Value>,
    ) -> Result<usize, StoreError> {
        let (pk, sk) = keys::row_key(name, generation, row);
        let key = keys::PK.len() + pk.len() + keys::SK.len() + sk.len();
        let Some(value) = value else {
            return Ok(key);
        };
        let text = serde_json::to_string(value)
            .map_err(|e| StoreError::internal("encoding a projection row", e))?;
        Ok(key + keys::ROW_VALUE.len() + text.len() + keys::POSITION.len() + 12)
    }

    async fn checkpoint(&self, slot: &Slot) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .checkpoint_item(&checkpoint_pk(slot))
            .await?
            .map(|item| decode_checkpoint(&item)))
    }

    async fn load_rows(
        &self,
        name: &str,
        generation: u64,
        needed: &BTreeSet<RowId>,
    ) -> Result<Rows, StoreError> {
        let mut values: Vec<(RowId, Option<Value>)> =
            needed.iter().map(|r| (r.clone(), None)).collect();
        if needed.is_empty() {
            return Ok(Rows::loaded(values));
        }
        let by_key: HashMap<(String, String), usize> = needed
            .iter()
            .enumerate()
            .map(|(i, r)| (keys::row_key(name, generation, r), i))
            .collect();
        let wanted = by_key.keys().map(|(pk, sk)| key(pk, sk)).collect();
        for item in batch_get_consistent(&self.client, &self.tables.rows, wanted).await? {
            let (Some(pk), Some(sk), Some(value)) = (
                text(&item, keys::PK),
                text(&item, keys::SK),
                text(&item, keys::ROW_VALUE),
            ) else {
                continue;
            };
            if let Some(i) = by_key.get(&(pk.to_owned(), sk.to_owned())) {
                let value = serde_json::from_str(value)
                    .map_err(|e| StoreError::internal("decoding a projection row", e))?;
                values[*i].1 = Some(value);
            }
        }
        Ok(Rows::loaded(values))
    }

    async fn commit(
        &self,
        slot: &Slot,
        read: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> Result<Commit, StoreError> {
        let mut writes = Vec::with_capacity(changes.len() + 1);
        for (row, value) in changes {
            writes.push(self.row_write(
                slot.name(),
                read.generation,
                position,
                row,
                value.as_ref(),
            )?);
        }
        writes.push(self.checkpoint_update(
            slot,
            read,
            "SET #pos = :new, #gen = if_not_exists(#gen, :gen), #parked = if_not_exists(#parked, :zero), #fail = :zero",
            vec![(":new", n(position))],
        )?);
        // A refusal for size is told apart: a transaction over 4 MB or 100 actions
        // (`ValidationException`), or with an item over 400 KB (cancelled with a
        // `ValidationError` reason).
        match send_guarded(&self.client, writes).await {
            Sent::Committed => Ok(Commit::Done),
            Sent::Lost => Ok(Commit::Lost),
            Sent::Failed(err) => match size_refusal(&err) {
                Some(reason) => Ok(Commit::Refused(reason)),
                None => Err(from_transaction(*err)),
            },
        }
    }

    /// Idempotent: each attempt writes a token of its own, so when the answer is lost and
    /// the SDK's resend fails its condition, reading the token back tells that the count
    /// did land (and must not be counted again by the engine re-reading and failing anew).
    async fn count_failure(&self, slot: &Slot, read: Checkpoint) -> Result<bool, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let failures = u64::from(read.failures) + 1;
        let write = self.checkpoint_update(
            slot,
            read,
            "SET #pos = :same, #gen = if_not_exists(#gen, :gen), #parked = if_not_exists(#parked, :zero), #fail = :fail, #attempt = :attempt",
            vec![
                (":same", n(read.position)),
                (":fail", n(failures)),
                (":attempt", s(&token)),
            ],
        )?;
        if self.transact(vec![write]).await? {
            return Ok(true);
        }
        let stored = self.checkpoint_item(&checkpoint_pk(slot)).await?;
        Ok(stored.is_some_and(|item| {
            number(&item, keys::POSITION) == Some(read.position)
                && number(&item, keys::FAILURES) == Some(failures)
                && text(&item, keys::FAILED_ATTEMPT) == Some(token.as_str())
        }))
    }

    async fn park(
        &self,
        slot: &Slot,
        read: Checkpoint,
        event: &ParkedEvent,
    ) -> Result<bool, StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.checkpoints)
            .set_item(Some(key(
                keys::parked_pk(slot.name(), read.generation),
                keys::parked_sk(event.position),
            )))
            .item(keys::EVENT_ID, s(&event.event_id))
            .item(keys::EVENT_TYPE, s(&event.event_type))
            .item(keys::STREAM_ID, s(&event.stream_id))
            .item(keys::ERROR, s(&event.error))
            .item(keys::ATTEMPTS, n(u64::from(event.attempts)))
            .build()
            .map_err(|e| StoreError::internal("building a Put", e))?;
        let update = self.checkpoint_update(
            slot,
            read,
            "SET #pos = :new, #gen = if_not_exists(#gen, :gen), #parked = if_not_exists(#parked, :zero) + :one, #fail = :zero",
            vec![(":new", n(event.position)), (":one", n(1))],
        )?;
        self.transact(vec![TransactWriteItem::builder().put(put).build(), update])
            .await
    }

    async fn start_rebuild(
        &self,
        name: &str,
        live: Checkpoint,
        stale: Option<u64>,
    ) -> Result<bool, StoreError> {
        rebuild::start(self, name, live, stale).await
    }

    async fn switch(
        &self,
        name: &str,
        live: Checkpoint,
        rebuilt: Checkpoint,
    ) -> Result<bool, StoreError> {
        rebuild::switch(self, name, live, rebuilt).await
    }

    async fn unpark(
        &self,
        name: &str,
        live: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> Result<bool, StoreError> {
        replay::unpark(self, name, live, position, changes).await
    }

    async fn parked(
        &self,
        name: &str,
        generation: u64,
    ) -> Result<Vec<eventstore_core::projection::port::Parked>, StoreError> {
        reads::parked(self, name, generation).await
    }

    async fn rows(
        &self,
        name: &str,
        generation: u64,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, Value)>, Option<String>), StoreError> {
        reads::rows(self, name, generation, key, after, limit).await
    }
}

#[cfg(test)]
mod tests;
