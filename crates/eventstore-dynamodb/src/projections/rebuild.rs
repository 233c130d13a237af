//! The two writes of a rebuild that touch both checkpoints: its start (the rebuild's
//! checkpoint created while the live one stays in its generation) and its switch (the live
//! checkpoint moved to the rebuilt generation as the rebuild's is deleted).

use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem};
use eventstore_core::projection::port::Slot;
use eventstore_core::{Checkpoint, StoreError};

use super::DynamoProjectionStore;
use crate::io::{key, n};
use crate::keys;

pub(super) async fn start(
    store: &DynamoProjectionStore,
    name: &str,
    live: Checkpoint,
    stale: Option<u64>,
) -> Result<bool, StoreError> {
    let put = Put::builder()
        .table_name(&store.tables.checkpoints)
        .set_item(Some(key(keys::rebuild_pk(name), keys::CHECKPOINT_SK)))
        .item(keys::POSITION, n(0))
        .item(keys::GENERATION, n(live.generation + 1))
        .item(keys::PARKED, n(0))
        .item(keys::FAILURES, n(0))
        .expression_attribute_names("#pk", keys::PK);
    let put = match stale {
        Some(generation) => put
            .condition_expression("attribute_exists(#pk) AND #gen = :stale")
            .expression_attribute_names("#gen", keys::GENERATION)
            .expression_attribute_values(":stale", n(generation)),
        None => put.condition_expression("attribute_not_exists(#pk)"),
    }
    .build()
    .map_err(|e| StoreError::internal("building a Put", e))?;
    let live_unchanged = ConditionCheck::builder()
        .table_name(&store.tables.checkpoints)
        .set_key(Some(key(keys::checkpoint_pk(name), keys::CHECKPOINT_SK)))
        .condition_expression("attribute_not_exists(#gen) OR #gen = :gen")
        .expression_attribute_names("#gen", keys::GENERATION)
        .expression_attribute_values(":gen", n(live.generation))
        .build()
        .map_err(|e| StoreError::internal("building a ConditionCheck", e))?;
    store
        .transact(vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder()
                .condition_check(live_unchanged)
                .build(),
        ])
        .await
}

pub(super) async fn switch(
    store: &DynamoProjectionStore,
    name: &str,
    live: Checkpoint,
    rebuilt: Checkpoint,
) -> Result<bool, StoreError> {
    // The live checkpoint takes the rebuilt generation and position (only if it is still
    // where it was read), and the rebuild's checkpoint goes (only if it is too).
    let switch = store.checkpoint_update(
        &Slot::Live(name.to_owned()),
        live,
        "SET #pos = :new, #gen = :newgen, #parked = :parked, #fail = :zero",
        vec![
            (":new", n(rebuilt.position)),
            (":newgen", n(rebuilt.generation)),
            (":parked", n(rebuilt.parked)),
        ],
    )?;
    let done = Delete::builder()
        .table_name(&store.tables.checkpoints)
        .set_key(Some(key(keys::rebuild_pk(name), keys::CHECKPOINT_SK)))
        .condition_expression("#pos = :at AND #gen = :gen")
        .expression_attribute_names("#pos", keys::POSITION)
        .expression_attribute_names("#gen", keys::GENERATION)
        .expression_attribute_values(":at", n(rebuilt.position))
        .expression_attribute_values(":gen", n(rebuilt.generation))
        .build()
        .map_err(|e| StoreError::internal("building a Delete", e))?;
    store
        .transact(vec![
            switch,
            TransactWriteItem::builder().delete(done).build(),
        ])
        .await
}
