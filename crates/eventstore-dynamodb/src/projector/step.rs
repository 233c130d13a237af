//! One step of a projection: read the rows its events touch, apply the events, and commit
//! rows and checkpoint in one transaction within DynamoDB's limits; failures counted once
//! and poison events parked.

use super::*;
use crate::log::{send_guarded, Sent};

impl Projector {
    pub(super) async fn step(
        &self,
        projection: &dyn Projection,
        pk: &str,
        checkpoint: Checkpoint,
        events: Vec<RecordedEvent>,
        report: &mut ProjectReport,
    ) -> Result<Step, StoreError> {
        // The longest prefix whose rows fit one transaction, each event with the rows it
        // declares (`None` for an event the projection does not handle).
        let mut needed: BTreeSet<RowId> = BTreeSet::new();
        let mut batch: Vec<(RecordedEvent, Option<BTreeSet<RowId>>)> = Vec::new();
        // An event that cannot be applied whatever the batch: its upcasting fails, or it
        // declares more rows than a transaction can write.
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
            if own.len() > ROWS_PER_STEP {
                unusable = Some((
                    batch.len(),
                    format!(
                        "the event declares {} rows, more than the {ROWS_PER_STEP} one transaction can write",
                        own.len()
                    ),
                ));
                batch.push((event, Some(BTreeSet::new())));
                break;
            }
            let new = own.iter().filter(|r| !needed.contains(*r)).count();
            if needed.len() + new > ROWS_PER_STEP {
                break;
            }
            needed.extend(own.iter().cloned());
            batch.push((event, Some(own)));
        }
        let mut rows = self
            .load_rows(projection.name(), checkpoint.generation, &needed)
            .await?;
        let mut position = checkpoint.position;
        let mut applied = 0;
        let mut failure = None;
        // The estimated size of each row the step writes, and their sum.
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
                // The event sees only the rows it declared, so what it reads does not depend
                // on which other events share its batch, and a failed event leaves `rows`
                // untouched.
                let mut scoped =
                    Rows::loaded(own.iter().map(|r| (r.clone(), rows.get(r).cloned())));
                if let Err(message) = projection.apply(event, &mut scoped) {
                    failure = Some((event, message));
                    break;
                }
                let changes = scoped.changes();
                // A row `rows()` did not declare was never loaded: writing it would replace
                // the stored value with one computed from nothing.
                if let Some((row, _)) = changes.iter().find(|(row, _)| !own.contains(row)) {
                    failure = Some((
                        event,
                        format!(
                            "apply wrote row {}, which rows() did not declare for this event",
                            describe(row)
                        ),
                    ));
                    break;
                }
                let mut grown = bytes;
                let mut new_sizes = Vec::with_capacity(changes.len());
                for (row, value) in &changes {
                    let size = self.row_bytes(
                        projection.name(),
                        checkpoint.generation,
                        row,
                        value.as_ref(),
                    )?;
                    grown = grown.saturating_sub(sizes.get(row).copied().unwrap_or(0)) + size;
                    new_sizes.push((row.clone(), size));
                }
                if let Some((row, size)) = new_sizes.iter().find(|(_, size)| *size > MAX_ITEM_BYTES)
                {
                    failure = Some((
                        event,
                        format!(
                            "row {} would be {size} bytes, over DynamoDB's 400 KB item limit",
                            describe(row)
                        ),
                    ));
                    break;
                }
                // Over budget with rows of earlier events: they go first, this event
                // starts the next step.
                if grown > MAX_TRANSACTION_BYTES && !sizes.is_empty() {
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
                .commit(projection.name(), pk, checkpoint, position, &changes)
                .await?
            {
                Commit::Done => {}
                Commit::Lost => return Ok(Step::Lost),
                // Larger than DynamoDB takes, though within the estimate: fewer events.
                Commit::Refused(_) if included > 1 => return Ok(Step::Shrink(included / 2)),
                // The one event's own rows cannot be written: it fails like an event
                // `apply` refuses.
                Commit::Refused(reason) => {
                    let Some(event) = last_writer else {
                        return Err(StoreError::corrupt(format!(
                            "DynamoDB refused a checkpoint write of {}: {reason}",
                            projection.name()
                        )));
                    };
                    let message =
                        format!("DynamoDB refused the transaction writing its rows: {reason}");
                    return self
                        .fail(
                            projection,
                            pk,
                            checkpoint,
                            checkpoint.position,
                            event,
                            message,
                            report,
                        )
                        .await;
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
        self.fail(projection, pk, checkpoint, position, event, message, report)
            .await
    }

    /// Records that the event after `position` failed: counts the attempt, or parks the
    /// event after [`POISON_ATTEMPTS`]. `checkpoint` is as read before the step, `position`
    /// where the step's commit (if any) left it.
    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &self,
        projection: &dyn Projection,
        pk: &str,
        checkpoint: Checkpoint,
        position: u64,
        event: &RecordedEvent,
        message: String,
        report: &mut ProjectReport,
    ) -> Result<Step, StoreError> {
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
        tracing::warn!(projection = projection.name(), event = %event.event_id,
            attempt = current.failures + 1, error = %message, "projection failed on an event");
        if current.failures + 1 >= POISON_ATTEMPTS {
            if self
                .park(projection.name(), pk, current, event, &message)
                .await?
            {
                report.parked += 1;
                return Ok(Step::Done);
            }
            return Ok(Step::Lost);
        }
        if !self.count_failure(pk, current).await? {
            return Ok(Step::Lost);
        }
        Ok(Step::Failed(StoreError::corrupt(format!(
            "projection {} cannot apply event {} at position {}: {message} (attempt {} of {POISON_ATTEMPTS})",
            projection.name(),
            event.event_id,
            event.global_position.unwrap_or(0),
            current.failures + 1
        ))))
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
            .map(|(i, r)| (row_key(name, generation, r), i))
            .collect();
        let keys = by_key
            .keys()
            .map(|(pk, sk)| {
                HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
            })
            .collect();
        for item in batch_get_consistent(&self.client, &self.tables.rows, keys).await? {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            let (Some(pk), Some(sk), Some(value)) =
                (text(keys::PK), text(keys::SK), text(ROW_VALUE))
            else {
                continue;
            };
            if let Some(i) = by_key.get(&(pk, sk)) {
                let value = serde_json::from_str(&value)
                    .map_err(|e| StoreError::internal("decoding a projection row", e))?;
                values[*i].1 = Some(value);
            }
        }
        Ok(Rows::loaded(values))
    }

    /// The checkpoint update, conditioned on the checkpoint as it was read.
    pub(super) fn checkpoint_update(
        &self,
        pk: &str,
        read: Checkpoint,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.tables.checkpoints)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(CHECKPOINT_SK))
            .update_expression(expression)
            .expression_attribute_names("#pos", POSITION)
            .expression_attribute_names("#gen", GENERATION)
            .expression_attribute_names("#parked", PARKED)
            .expression_attribute_names("#fail", FAILURES)
            .expression_attribute_values(":gen", n(read.generation))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":oldfail", n(u64::from(read.failures)));
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        // DynamoDB refuses names an expression does not use.
        if expression.contains("#attempt") {
            update = update.expression_attribute_names("#attempt", FAILED_ATTEMPT);
        }
        // The live checkpoint is created by its first write. A rebuild's never is: it
        // exists from the rebuild's start until the switch deletes it, and recreating it
        // after the switch would replay into the generation just made live.
        update = if read.position == 0 && !is_rebuild(pk) {
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

    async fn commit(
        &self,
        name: &str,
        pk: &str,
        read: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> Result<Commit, StoreError> {
        let mut writes = Vec::with_capacity(changes.len() + 1);
        for (row, value) in changes {
            let (pk, sk) = row_key(name, read.generation, row);
            let write = match value {
                Some(value) => {
                    let text = serde_json::to_string(value)
                        .map_err(|e| StoreError::internal("encoding a projection row", e))?;
                    let put = Put::builder()
                        .table_name(&self.tables.rows)
                        .item(keys::PK, s(pk))
                        .item(keys::SK, s(sk))
                        .item(ROW_VALUE, s(text))
                        .item(POSITION, n(position))
                        .build()
                        .map_err(|e| StoreError::internal("building a Put", e))?;
                    TransactWriteItem::builder().put(put).build()
                }
                None => {
                    let delete = Delete::builder()
                        .table_name(&self.tables.rows)
                        .key(keys::PK, s(pk))
                        .key(keys::SK, s(sk))
                        .build()
                        .map_err(|e| StoreError::internal("building a Delete", e))?;
                    TransactWriteItem::builder().delete(delete).build()
                }
            };
            writes.push(write);
        }
        writes.push(self.checkpoint_update(
            pk,
            read,
            "SET #pos = :new, #gen = if_not_exists(#gen, :gen), #parked = if_not_exists(#parked, :zero), #fail = :zero",
            vec![(":new", n(position))],
        )?);
        self.transact_sized(writes).await
    }

    /// The size DynamoDB counts for a row item: attribute names and values (a deleted
    /// row, its key), plus a margin for number encoding.
    fn row_bytes(
        &self,
        name: &str,
        generation: u64,
        row: &RowId,
        value: Option<&Value>,
    ) -> Result<usize, StoreError> {
        let (pk, sk) = row_key(name, generation, row);
        let key = keys::PK.len() + pk.len() + keys::SK.len() + sk.len();
        let Some(value) = value else {
            return Ok(key);
        };
        let text = serde_json::to_string(value)
            .map_err(|e| StoreError::internal("encoding a projection row", e))?;
        Ok(key + ROW_VALUE.len() + text.len() + POSITION.len() + 12)
    }

    /// `transact` for a step's commit, telling a refusal for size apart: a transaction
    /// over 4 MB or 100 actions (`ValidationException`), or with an item over 400 KB
    /// (cancelled with a `ValidationError` reason).
    async fn transact_sized(&self, writes: Vec<TransactWriteItem>) -> Result<Commit, StoreError> {
        match send_guarded(&self.client, writes).await {
            Sent::Committed => Ok(Commit::Done),
            Sent::Lost => Ok(Commit::Lost),
            Sent::Failed(err) => match size_refusal(&err) {
                Some(reason) => Ok(Commit::Refused(reason)),
                None => Err(from_transaction(*err)),
            },
        }
    }

    /// Counts one failed attempt at the event after `read.position`. Idempotent: each
    /// attempt writes a token of its own, so when the answer is lost and the SDK's resend
    /// fails its condition, reading the token back tells that the count did land (and must
    /// not be counted again by the caller re-reading and failing anew).
    async fn count_failure(&self, pk: &str, read: Checkpoint) -> Result<bool, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let failures = u64::from(read.failures) + 1;
        let write = self.checkpoint_update(
            pk,
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
        let stored =
            get_consistent(&self.client, &self.tables.checkpoints, pk, CHECKPOINT_SK).await?;
        Ok(stored.is_some_and(|item| {
            number(&item, POSITION) == read.position
                && number(&item, FAILURES) == failures
                && item.get(FAILED_ATTEMPT).and_then(|v| v.as_s().ok()) == Some(&token)
        }))
    }

    async fn park(
        &self,
        name: &str,
        pk: &str,
        read: Checkpoint,
        event: &RecordedEvent,
        message: &str,
    ) -> Result<bool, StoreError> {
        let position = event.global_position.unwrap_or(read.position + 1);
        let put = Put::builder()
            .table_name(&self.tables.checkpoints)
            .item(keys::PK, s(parked_pk(name, read.generation)))
            .item(keys::SK, s(format!("{position:020}")))
            .item("eventId", s(event.event_id.to_string()))
            .item("eventType", s(event.event_type.as_str()))
            .item("streamId", s(event.stream_id.as_str()))
            .item("error", s(bounded(message)))
            .item("attempts", n(u64::from(read.failures) + 1))
            .build()
            .map_err(|e| StoreError::internal("building a Put", e))?;
        let update = self.checkpoint_update(
            pk,
            read,
            "SET #pos = :new, #gen = if_not_exists(#gen, :gen), #parked = if_not_exists(#parked, :zero) + :one, #fail = :zero",
            vec![(":new", n(position)), (":one", n(1))],
        )?;
        tracing::error!(projection = name, event = %event.event_id, position, error = message,
            "event parked after {POISON_ATTEMPTS} failed attempts");
        self.transact(vec![TransactWriteItem::builder().put(put).build(), update])
            .await
    }

    /// `true` if committed; `false` if a condition failed (another projector moved first).
    pub(super) async fn transact(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<bool, StoreError> {
        transact_conditionally(&self.client, writes).await
    }
}

/// Longest error text a parked entry keeps: a projection's error of any length must not
/// make the parked item too large to write, which would leave the event stuck.
const MAX_PARKED_ERROR_BYTES: usize = 4096;

/// `message`, cut to [`MAX_PARKED_ERROR_BYTES`] at a character boundary.
fn bounded(message: &str) -> &str {
    let mut end = message.len().min(MAX_PARKED_ERROR_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A row as operators name it: `key`, or `key/item`.
fn describe(row: &RowId) -> String {
    if row.item.is_empty() {
        row.key.clone()
    } else {
        format!("{}/{}", row.key, row.item)
    }
}

/// The reason DynamoDB refused a transaction as too large, if it did: a
/// `ValidationException` about a size or a length (too many bytes, too many actions), or a
/// cancellation with a `ValidationError` reason (an item over 400 KB). Other validation
/// errors are the projector's own faults and no reason to park an event.
fn size_refusal(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> Option<String> {
    let SdkError::ServiceError(se) = err else {
        return None;
    };
    match se.err() {
        TransactWriteItemsError::TransactionCanceledException(c) => c
            .cancellation_reasons()
            .iter()
            .find(|r| r.code() == Some("ValidationError"))
            .map(|r| format!("ValidationError: {}", r.message().unwrap_or("no message"))),
        other if other.code() == Some("ValidationException") => {
            let message = other.message().unwrap_or("no message");
            let lower = message.to_ascii_lowercase();
            (lower.contains("size") || lower.contains("length"))
                .then(|| format!("ValidationException: {message}"))
        }
        _ => None,
    }
}

/// How a step's commit ended.
enum Commit {
    Done,
    /// A condition failed: another projector moved first.
    Lost,
    /// Too large for DynamoDB, with its reason.
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_error_is_cut_to_its_limit_at_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(MAX_PARKED_ERROR_BYTES);
        let cut = bounded(&long);
        // "é" is two bytes: the limit falls between characters or on one's end.
        assert_eq!(cut.len(), MAX_PARKED_ERROR_BYTES);
        let odd = format!("x{long}");
        assert_eq!(bounded(&odd).len(), MAX_PARKED_ERROR_BYTES - 1);
    }

    #[test]
    fn only_size_and_length_validation_errors_are_refusals_for_size() {
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        use aws_sdk_dynamodb::types::CancellationReason;
        let response = || {
            HttpResponse::new(
                400u16.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::empty(),
            )
        };
        let validation = |message: &str| {
            SdkError::service_error(
                TransactWriteItemsError::generic(
                    aws_sdk_dynamodb::error::ErrorMetadata::builder()
                        .code("ValidationException")
                        .message(message)
                        .build(),
                ),
                response(),
            )
        };
        assert_eq!(
            size_refusal(&validation(
                "Item size has exceeded the maximum allowed size"
            )),
            Some("ValidationException: Item size has exceeded the maximum allowed size".into())
        );
        assert_eq!(
            size_refusal(&validation(
                "Member must have length less than or equal to 100"
            )),
            Some("ValidationException: Member must have length less than or equal to 100".into())
        );
        // The projector's own mistake is no reason to park an event.
        assert_eq!(
            size_refusal(&validation(
                "Value provided in ExpressionAttributeNames unused in expressions"
            )),
            None
        );
        let cancelled = |code: &str| {
            SdkError::service_error(
                TransactWriteItemsError::TransactionCanceledException(
                    TransactionCanceledException::builder()
                        .cancellation_reasons(CancellationReason::builder().code("None").build())
                        .cancellation_reasons(
                            CancellationReason::builder()
                                .code(code)
                                .message("Item size has exceeded the maximum allowed size")
                                .build(),
                        )
                        .build(),
                ),
                response(),
            )
        };
        assert_eq!(
            size_refusal(&cancelled("ValidationError")),
            Some("ValidationError: Item size has exceeded the maximum allowed size".into())
        );
        assert_eq!(size_refusal(&cancelled("ConditionalCheckFailed")), None);
    }
}
