//! Rebuild: replay a projection into a new generation of rows and switch readers to it,
//! idempotently (a re-run after any failure resumes, or finds its generation live).

use super::engine::ProjectionEngine;
use super::port::{ProjectionStore, Slot};
use super::{Checkpoint, Projection};
use crate::{EventLog, StoreError};

/// Attempts at starting a rebuild while the checkpoints keep moving.
const START_ATTEMPTS: usize = 20;
/// Positions a rebuild replays between looks at the head.
const REBUILD_STRIDE: u64 = 1000;

impl<L: EventLog, S: ProjectionStore> ProjectionEngine<L, S> {
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
    /// the same commit that moves the live one.
    pub async fn rebuild(
        &self,
        projection: &dyn Projection,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Checkpoint, StoreError> {
        let name = projection.name();
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
                let step_to = at.position.saturating_add(REBUILD_STRIDE).min(head);
                self.catch_up_at(projection, Slot::Rebuild(name.to_owned()), Some(step_to))
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
            if self.rows.switch(name, live, rebuilt).await? {
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
    async fn start_rebuild(&self, name: &str) -> Result<u64, StoreError> {
        let slot = Slot::Rebuild(name.to_owned());
        for _ in 0..START_ATTEMPTS {
            let live = self.checkpoint(name).await?;
            let next = live.generation + 1;
            let stale = match self.rows.checkpoint(&slot).await? {
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
                    Some(stale.generation)
                }
                None => None,
            };
            if self.rows.start_rebuild(name, live, stale).await? {
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
    async fn rebuild_checkpoint(
        &self,
        name: &str,
        generation: u64,
    ) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .rows
            .checkpoint(&Slot::Rebuild(name.to_owned()))
            .await?
            .filter(|c| c.generation == generation))
    }

    /// The answer of a rebuild to `generation` whose checkpoint is gone: done if the live
    /// checkpoint has reached that generation.
    async fn switched(&self, name: &str, generation: u64) -> Result<Checkpoint, StoreError> {
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
