//! A parked event applied late: its rows, the parked record's deletion and the parked
//! count, in one transaction conditioned on the live checkpoint as read.

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use eventstore_core::projection::port::Slot;
use eventstore_core::{Checkpoint, RowId, StoreError};
use serde_json::Value;

use super::DynamoProjectionStore;
use crate::io::{key, n};
use crate::keys;

pub(super) async fn unpark(
    store: &DynamoProjectionStore,
    name: &str,
    live: Checkpoint,
    position: u64,
    changes: &[(RowId, Option<Value>)],
) -> Result<bool, StoreError> {
    let mut writes = Vec::with_capacity(changes.len() + 2);
    for (row, value) in changes {
        writes.push(store.row_write(name, live.generation, position, row, value.as_ref())?);
    }
    let parked = Delete::builder()
        .table_name(&store.tables.checkpoints)
        .set_key(Some(key(
            keys::parked_pk(name, live.generation),
            keys::parked_sk(position),
        )))
        .condition_expression("attribute_exists(#pk)")
        .expression_attribute_names("#pk", keys::PK)
        .build()
        .map_err(|e| StoreError::internal("building a Delete", e))?;
    writes.push(TransactWriteItem::builder().delete(parked).build());
    writes.push(store.checkpoint_update(
        &Slot::Live(name.to_owned()),
        live,
        "SET #parked = if_not_exists(#parked, :zero) - :one",
        vec![(":one", n(1))],
    )?);
    store.transact(writes).await
}
