//! Rebuild: replay a projection into a new generation of rows and switch readers to it,
//! idempotently (a re-run after any failure resumes or finds its generation live).

use super::*;

impl Projector {
    /// Replays `projection` from position 1 into a fresh generation of its rows, then
    /// switches readers to it atomically. Reads keep answering from the live generation
    /// meanwhile, and the live projector keeps running. `progress` gets (position, head)
    /// after each step.
    ///
    /// Safe to re-run after any failure, and to run twice at once: a run resumes the
    /// rebuild in progress, and one that finds its generation already switched (by
    /// itself, its answer lost, or by a concurrent run) reports the live checkpoint. The
    /// live generation's rows are never written: a rebuild's checkpoint is created only
    /// while the live one is in the generation before it, and the switch deletes it in
    /// the same transaction that moves the live one.
    pub async fn rebuild(
        &self,
        projection: &dyn Projection,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Checkpoint, StoreError> {
        let name = projection.name();
        let rebuild_pk = rebuild_pk(name);
        let generation = self.start_rebuild(name).await?;
        loop {
            let head = self.head().await?;
            let rebuilt = loop {
                let Some(at) = self.rebuild_checkpoint(name, generation).await? else {
                    return self.switched(name, generation).await;
                };
                progress(at.position, head);
                if at.position >= head {
                    break at;
                }
                let step_to = at.position.saturating_add(1000).min(head);
                self.catch_up_at(projection, &rebuild_pk, Some(step_to))
                    .await?;
            };
            let live = self.checkpoint(name).await?;
            if live.generation >= generation {
                return self.switched(name, generation).await;
            }
            if live.position > rebuilt.position {
                // The live projector is ahead: catch up further first.
                continue;
            }
            // One transaction: the live checkpoint takes the rebuilt generation and position
            // (only if it is still where it was read), and the rebuild's checkpoint goes.
            let switch = self.checkpoint_update(
                &checkpoint_pk(name),
                live,
                "SET #pos = :new, #gen = :newgen, #parked = :parked, #fail = :zero",
                vec![
                    (":new", n(rebuilt.position)),
                    (":newgen", n(rebuilt.generation)),
                    (":parked", n(rebuilt.parked)),
                ],
            )?;
            let done = Delete::builder()
                .table_name(&self.tables.checkpoints)
                .key(keys::PK, s(&rebuild_pk))
                .key(keys::SK, s(CHECKPOINT_SK))
                .condition_expression("#pos = :at AND #gen = :gen")
                .expression_attribute_names("#pos", POSITION)
                .expression_attribute_names("#gen", GENERATION)
                .expression_attribute_values(":at", n(rebuilt.position))
                .expression_attribute_values(":gen", n(generation))
                .build()
                .map_err(|e| StoreError::internal("building a Delete", e))?;
            if self
                .transact(vec![
                    switch,
                    TransactWriteItem::builder().delete(done).build(),
                ])
                .await?
            {
                return self.checkpoint(name).await;
            }
            // A condition failed: the live projector or the rebuild moved, or the switch
            // already happened (this one with its answer lost, or a concurrent run's). The
            // next round re-reads both and tells which.
        }
    }

    /// The generation a rebuild of `name` fills: the one in progress if its checkpoint is
    /// the live generation's next, else a new one, created only while the live checkpoint
    /// is still in the generation before it.
    pub(super) async fn start_rebuild(&self, name: &str) -> Result<u64, StoreError> {
        let rebuild_pk = rebuild_pk(name);
        for _ in 0..20 {
            let live = self.checkpoint(name).await?;
            let next = live.generation + 1;
            let found = self.checkpoint_at(&rebuild_pk).await?;
            let mut put = Put::builder()
                .table_name(&self.tables.checkpoints)
                .item(keys::PK, s(&rebuild_pk))
                .item(keys::SK, s(CHECKPOINT_SK))
                .item(POSITION, n(0))
                .item(GENERATION, n(next))
                .item(PARKED, n(0))
                .item(FAILURES, n(0))
                .expression_attribute_names("#pk", keys::PK);
            put = match found {
                Some(rebuild) if rebuild.generation == next => return Ok(next),
                // Left by an older version of this code, whose switch could recreate the
                // rebuild's checkpoint in the generation it had just made live: resuming
                // it would write live rows. It is replaced, only as it was read.
                Some(stale) => {
                    tracing::warn!(
                        projection = name,
                        stale = stale.generation,
                        live = live.generation,
                        "replacing a rebuild checkpoint that is not the live generation's next"
                    );
                    put.condition_expression("attribute_exists(#pk) AND #gen = :stale")
                        .expression_attribute_names("#gen", GENERATION)
                        .expression_attribute_values(":stale", n(stale.generation))
                }
                None => put.condition_expression("attribute_not_exists(#pk)"),
            };
            let put = put
                .build()
                .map_err(|e| StoreError::internal("building a Put", e))?;
            let live_unchanged = ConditionCheck::builder()
                .table_name(&self.tables.checkpoints)
                .key(keys::PK, s(checkpoint_pk(name)))
                .key(keys::SK, s(CHECKPOINT_SK))
                .condition_expression("attribute_not_exists(#gen) OR #gen = :gen")
                .expression_attribute_names("#gen", GENERATION)
                .expression_attribute_values(":gen", n(live.generation))
                .build()
                .map_err(|e| StoreError::internal("building a ConditionCheck", e))?;
            if self
                .transact(vec![
                    TransactWriteItem::builder().put(put).build(),
                    TransactWriteItem::builder()
                        .condition_check(live_unchanged)
                        .build(),
                ])
                .await?
            {
                return Ok(next);
            }
            // Another run started it, or the live generation moved: read again.
        }
        Err(StoreError::Unavailable {
            message: format!("the checkpoints of {name} keep moving; the rebuild did not start"),
            source: None,
        })
    }

    /// The checkpoint of the rebuild to `generation`, `None` once it is over.
    pub(super) async fn rebuild_checkpoint(
        &self,
        name: &str,
        generation: u64,
    ) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .checkpoint_at(&rebuild_pk(name))
            .await?
            .filter(|c| c.generation == generation))
    }

    /// The answer of a rebuild to `generation` whose checkpoint is gone: done if the live
    /// checkpoint has reached that generation.
    pub(super) async fn switched(
        &self,
        name: &str,
        generation: u64,
    ) -> Result<Checkpoint, StoreError> {
        let live = self.checkpoint(name).await?;
        if live.generation >= generation {
            tracing::info!(
                projection = name,
                generation,
                "the rebuild's generation is live"
            );
            return Ok(live);
        }
        Err(StoreError::corrupt(format!(
            "the rebuild of {name} to generation {generation} lost its checkpoint before its switch (was it deleted by hand?); re-run to start over"
        )))
    }
}
