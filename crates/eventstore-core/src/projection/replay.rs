//! Replay of parked events: after a fix (to the projection, or to the data it was waiting
//! for), a parked event is applied late to the rows as they are now, and leaves the parked
//! list, in one commit that holds only if the live checkpoint has not moved meanwhile.

use std::collections::BTreeSet;

use super::engine::ProjectionEngine;
use super::port::ProjectionStore;
use super::step::{apply_declared, row_too_large};
use super::{Projection, RowId};
use crate::{EventLog, GlobalFilter, StoreError};

/// Commits a replay tries while the live projector keeps moving the checkpoint.
const REPLAY_ATTEMPTS: usize = 20;

/// What a replay of parked events did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Positions applied and no longer parked.
    pub applied: Vec<u64>,
    /// Positions still parked, with why.
    pub failed: Vec<(u64, String)>,
}

impl<L: EventLog, S: ProjectionStore> ProjectionEngine<L, S> {
    /// Applies the parked events of `projection`'s live generation (only the one at `only`,
    /// if given), oldest first, each to the rows as they are now, and takes each applied one
    /// off the parked list. An event that still cannot be applied stays parked, with its new
    /// error in the answer.
    ///
    /// A replayed event is applied out of its order: exact for a projection whose changes
    /// commute (counts, sums, sets), which is what parking suits; where order matters,
    /// `rebuild` replays everything in order instead.
    pub async fn replay_parked(
        &self,
        projection: &dyn Projection,
        only: Option<u64>,
    ) -> Result<Replayed, StoreError> {
        let name = projection.name();
        let generation = self.checkpoint(name).await?.generation;
        let mut replayed = Replayed::default();
        for parked in self.rows.parked(name, generation).await? {
            if only.is_some_and(|at| at != parked.position) {
                continue;
            }
            match self.replay_one(projection, parked.position).await? {
                Ok(()) => replayed.applied.push(parked.position),
                Err(message) => replayed.failed.push((parked.position, message)),
            }
        }
        Ok(replayed)
    }

    async fn replay_one(
        &self,
        projection: &dyn Projection,
        position: u64,
    ) -> Result<Result<(), String>, StoreError> {
        let name = projection.name();
        let page = self
            .store
            .read_global(&GlobalFilter::All, Some(position), 1)
            .await?;
        let Some(event) = page
            .events
            .into_iter()
            .find(|e| e.global_position == Some(position))
        else {
            return Ok(Err(format!(
                "position {position} is not readable in the global order"
            )));
        };
        let event = match self.upcasters.upcast(event) {
            Ok(event) => event,
            Err(err) => return Ok(Err(err.to_string())),
        };
        let own: BTreeSet<RowId> = projection.rows(&event).into_iter().collect();
        let limits = self.rows.limits();
        // Deleting the parked record takes the place of one row.
        let max_rows = limits.rows.saturating_sub(1);
        if own.len() > max_rows {
            return Ok(Err(format!(
                "the event declares {} rows, more than the {max_rows} a replay can write",
                own.len()
            )));
        }
        for _ in 0..REPLAY_ATTEMPTS {
            let live = self.checkpoint(name).await?;
            let rows = self.rows.load_rows(name, live.generation, &own).await?;
            let changes = match apply_declared(projection, &event, &own, &rows) {
                Ok(changes) => changes,
                Err(message) => return Ok(Err(message)),
            };
            for (row, value) in &changes {
                let size = self
                    .rows
                    .row_size(name, live.generation, row, value.as_ref())?;
                if size > limits.row_bytes {
                    return Ok(Err(row_too_large(&limits, row, size)));
                }
            }
            if self.rows.unpark(name, live, position, &changes).await? {
                tracing::info!(projection = name, position, "parked event replayed");
                return Ok(Ok(()));
            }
            // The live projector moved, or the entry went (another replay): read again.
            if !self
                .rows
                .parked(name, live.generation)
                .await?
                .iter()
                .any(|p| p.position == position)
            {
                return Ok(Err(
                    "no longer parked in the live generation (replayed or rebuilt meanwhile)"
                        .into(),
                ));
            }
        }
        Err(StoreError::Unavailable {
            message: format!("the checkpoint of {name} kept moving; re-run the replay"),
            source: None,
        })
    }
}
