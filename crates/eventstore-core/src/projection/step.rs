//! One step of a projection: read the rows its events touch, apply the events, and commit
//! rows and checkpoint at once within the store's limits; failures counted once and poison
//! events parked.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::engine::{ProjectReport, ProjectionEngine, Step, POISON_ATTEMPTS};
use super::port::{Commit, CommitLimits, ParkedEvent, ProjectionStore, Slot};
use super::{Checkpoint, Projection, RowId, Rows};
use crate::{EventLog, RecordedEvent, StoreError};

/// Longest error text a parked entry keeps: a projection's error of any length must not
/// make the parked record too large to write, which would leave the event stuck.
pub const MAX_PARKED_ERROR_BYTES: usize = 4096;

impl<L: EventLog, S: ProjectionStore> ProjectionEngine<L, S> {
    pub(super) async fn step(
        &self,
        projection: &dyn Projection,
        slot: &Slot,
        checkpoint: Checkpoint,
        events: Vec<RecordedEvent>,
        report: &mut ProjectReport,
    ) -> Result<Step, StoreError> {
        let limits = self.rows.limits();
        // The longest prefix whose rows fit one commit, each event with the rows it
        // declares (`None` for an event the projection does not handle).
        let mut needed: BTreeSet<RowId> = BTreeSet::new();
        let mut batch: Vec<(RecordedEvent, Option<BTreeSet<RowId>>)> = Vec::new();
        // An event that cannot be applied whatever the batch: its upcasting fails, or it
        // declares more rows than a commit can write.
        let mut unusable: Option<(usize, String)> = None;
        for event in events {
            if !projection.handles(&event.event_type) {
                batch.push((event, None));
                continue;
            }
            let event = match self.upcasters.upcast(event.clone()) {
                Ok(upcast) => upcast,
                Err(err) => {
                    unusable = Some((batch.len(), err.to_string()));
                    batch.push((event, Some(BTreeSet::new())));
                    break;
                }
            };
            let own: BTreeSet<RowId> = projection.rows(&event).into_iter().collect();
            if own.len() > limits.rows {
                unusable = Some((
                    batch.len(),
                    format!(
                        "the event declares {} rows, more than the {} one transaction can write",
                        own.len(),
                        limits.rows
                    ),
                ));
                batch.push((event, Some(BTreeSet::new())));
                break;
            }
            let new = own.iter().filter(|r| !needed.contains(*r)).count();
            if needed.len() + new > limits.rows {
                break;
            }
            needed.extend(own.iter().cloned());
            batch.push((event, Some(own)));
        }
        let name = projection.name();
        let mut rows = self
            .rows
            .load_rows(name, checkpoint.generation, &needed)
            .await?;
        let mut position = checkpoint.position;
        let mut applied = 0;
        let mut failure = None;
        // The size of each row the step writes, and their sum.
        let mut sizes: HashMap<RowId, usize> = HashMap::new();
        let mut bytes = 0usize;
        // Events up to `position`, and the last of them that wrote rows.
        let mut included = 0;
        let mut last_writer = None;
        for (i, (event, own)) in batch.iter().enumerate() {
            let at = event
                .global_position
                .ok_or_else(|| StoreError::corrupt("an event of $all without a position"))?;
            if let Some(own) = own {
                if let Some((_, message)) = unusable.as_ref().filter(|(at, _)| *at == i) {
                    failure = Some((event, message.clone()));
                    break;
                }
                let changes = match apply_declared(projection, event, own, &rows) {
                    Ok(changes) => changes,
                    Err(message) => {
                        failure = Some((event, message));
                        break;
                    }
                };
                let mut grown = bytes;
                let mut new_sizes = Vec::with_capacity(changes.len());
                for (row, value) in &changes {
                    let size =
                        self.rows
                            .row_size(name, checkpoint.generation, row, value.as_ref())?;
                    grown = grown.saturating_sub(sizes.get(row).copied().unwrap_or(0)) + size;
                    new_sizes.push((row.clone(), size));
                }
                if let Some((row, size)) =
                    new_sizes.iter().find(|(_, size)| *size > limits.row_bytes)
                {
                    failure = Some((event, row_too_large(&limits, row, *size)));
                    break;
                }
                // Over budget with rows of earlier events: they go first, this event
                // starts the next step.
                if grown > limits.bytes && !sizes.is_empty() {
                    break;
                }
                bytes = grown;
                sizes.extend(new_sizes);
                for (row, value) in changes {
                    match value {
                        Some(value) => rows.put(row, value),
                        None => rows.delete(row),
                    }
                }
                applied += 1;
                last_writer = Some(event);
            }
            position = at;
            included = i + 1;
        }
        if position > checkpoint.position {
            let changes = rows.changes();
            match self
                .rows
                .commit(slot, checkpoint, position, &changes)
                .await?
            {
                Commit::Done => {}
                Commit::Lost => return Ok(Step::Lost),
                // Larger than storage takes, though within the estimate: fewer events.
                Commit::Refused(_) if included > 1 => return Ok(Step::Shrink(included / 2)),
                // The one event's own rows cannot be written: it fails like an event
                // `apply` refuses.
                Commit::Refused(reason) => {
                    let Some(event) = last_writer else {
                        return Err(StoreError::corrupt(format!(
                            "{} refused a checkpoint write of {name}: {reason}",
                            limits.storage
                        )));
                    };
                    let message = format!(
                        "{} refused the transaction writing its rows: {reason}",
                        limits.storage
                    );
                    let failed = Failed {
                        projection,
                        slot,
                        checkpoint,
                        position: checkpoint.position,
                    };
                    return self.fail(failed, event, message, report).await;
                }
            }
            report.applied += applied;
            report.rows_written += changes.len() as u64;
            report.transactions += 1;
            if failure.is_none() {
                return Ok(Step::Done);
            }
        }
        let Some((event, message)) = failure else {
            return Ok(Step::Done);
        };
        let failed = Failed {
            projection,
            slot,
            checkpoint,
            position,
        };
        self.fail(failed, event, message, report).await
    }

    /// Records that the event after `failed.position` failed: counts the attempt, or parks
    /// the event after [`POISON_ATTEMPTS`].
    async fn fail(
        &self,
        failed: Failed<'_>,
        event: &RecordedEvent,
        message: String,
        report: &mut ProjectReport,
    ) -> Result<Step, StoreError> {
        let Failed {
            projection,
            slot,
            checkpoint,
            position,
        } = failed;
        // The event after `position` fails. The checkpoint now stands right before it.
        let current = Checkpoint {
            position,
            failures: if position > checkpoint.position {
                0
            } else {
                checkpoint.failures
            },
            ..checkpoint
        };
        let name = projection.name();
        tracing::warn!(projection = name, event = %event.event_id,
            attempt = current.failures + 1, error = %message, "projection failed on an event");
        if current.failures + 1 >= POISON_ATTEMPTS {
            let at = event.global_position.unwrap_or(current.position + 1);
            let parked = ParkedEvent {
                position: at,
                event_id: event.event_id.to_string(),
                event_type: event.event_type.as_str().to_owned(),
                stream_id: event.stream_id.as_str().to_owned(),
                error: bounded(&message).to_owned(),
                attempts: current.failures + 1,
            };
            tracing::error!(projection = name, event = %event.event_id, position = at,
                error = %message, "event parked after {POISON_ATTEMPTS} failed attempts");
            if self.rows.park(slot, current, &parked).await? {
                report.parked += 1;
                return Ok(Step::Done);
            }
            return Ok(Step::Lost);
        }
        if !self.rows.count_failure(slot, current).await? {
            return Ok(Step::Lost);
        }
        Ok(Step::Failed(StoreError::corrupt(format!(
            "projection {name} cannot apply event {} at position {}: {message} (attempt {} of {POISON_ATTEMPTS})",
            event.event_id,
            event.global_position.unwrap_or(0),
            current.failures + 1
        ))))
    }
}

/// Where a step failed: `checkpoint` as read before the step, `position` where the step's
/// commit (if any) left it.
struct Failed<'a> {
    projection: &'a dyn Projection,
    slot: &'a Slot,
    checkpoint: Checkpoint,
    position: u64,
}

/// `message`, cut to [`MAX_PARKED_ERROR_BYTES`] at a character boundary.
pub(super) fn bounded(message: &str) -> &str {
    let mut end = message.len().min(MAX_PARKED_ERROR_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// Applies `event` to the rows it declared (`own`, as they stand in `rows`): its changes,
/// or why it cannot be applied. The event sees only the rows it declared, so what it reads
/// does not depend on which other events share its batch, and a failure changes nothing.
pub(super) fn apply_declared(
    projection: &dyn Projection,
    event: &RecordedEvent,
    own: &BTreeSet<RowId>,
    rows: &Rows,
) -> Result<Vec<(RowId, Option<Value>)>, String> {
    let mut scoped = Rows::loaded(own.iter().map(|r| (r.clone(), rows.get(r).cloned())));
    projection.apply(event, &mut scoped)?;
    let changes = scoped.changes();
    // A row `rows()` did not declare was never loaded: writing it would replace the stored
    // value with one computed from nothing.
    if let Some((row, _)) = changes.iter().find(|(row, _)| !own.contains(row)) {
        return Err(format!(
            "apply wrote row {}, which rows() did not declare for this event",
            describe(row)
        ));
    }
    Ok(changes)
}

/// Why an event whose change makes `row` `size` bytes cannot be applied.
pub(super) fn row_too_large(limits: &CommitLimits, row: &RowId, size: usize) -> String {
    format!(
        "row {} would be {size} bytes, over {}",
        describe(row),
        limits.row_limit
    )
}

/// A row as operators name it: `key`, or `key/item`.
pub(super) fn describe(row: &RowId) -> String {
    if row.item.is_empty() {
        row.key.clone()
    } else {
        format!("{}/{}", row.key, row.item)
    }
}
