//! Claims on the counter, and rolling them forward: each event of a claim gets its
//! position. Every write here is idempotent, so a
//! claim may be rolled forward by its writer, by a sequencer that finds it on the counter,
//! and by the sweep, in any order and more than once.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use eventstore_core::StoreError;
use futures::{StreamExt, TryStreamExt};

use super::claim::{Claim, Placement};
use super::round::claim_of;
use super::Sequencer;
use crate::error::from_sdk;
use crate::io::{counter_value, failed_condition, get_consistent, key, n, number, s, Item};
use crate::keys;

/// Writes in flight at once while a claim is rolled forward.
const ROLL_CONCURRENCY: usize = 32;

impl Sequencer {
    /// The counter's last position, with the claim it holds rolled forward. A warm
    /// sequencer knows it from its own last round and reads nothing; otherwise one
    /// consistent `GetItem`.
    pub(super) async fn settled_last(&self) -> Result<u64, StoreError> {
        if let Some(last) = self.known() {
            return Ok(last);
        }
        self.settle_in_turn().await
    }

    /// Reads the counter and rolls forward the claim it holds, as far as it is not rolled
    /// forward yet: what a cold sequencer does first, and what the sweep does on every run,
    /// so that a claim whose writer stopped half way is finished even when no other append
    /// comes. Returns the counter's last position.
    pub async fn settle(&self) -> Result<u64, StoreError> {
        let _turn = self.gate.lock().await;
        self.settle_in_turn().await
    }

    /// [`Sequencer::settle`] by a caller that holds the gate.
    pub(super) async fn settle_in_turn(&self) -> Result<u64, StoreError> {
        let counter = get_consistent(
            &self.log.client,
            &self.log.table,
            keys::GLOBAL_COUNTER_PK,
            keys::COUNTER_SK,
        )
        .await?;
        self.settle_item(counter.as_ref()).await
    }

    async fn settle_item(&self, counter: Option<&Item>) -> Result<u64, StoreError> {
        let last = counter_value(counter)?;
        if self.known() == Some(last) {
            // This process rolled forward the claim that ends there (it learns `last` only
            // then), and nobody has claimed since: nothing to check, nothing stale. A warm
            // sweep after the stream path's rounds reads no claim's events.
            return Ok(last);
        }
        // Whatever this process knew of streams' boundaries may be stale now.
        self.forget_bounds();
        if let Some(claim) = counter.map(claim_of).transpose()?.flatten() {
            if claim.last() != last {
                // Only a sequencer of an earlier version moves the counter without a claim
                // (while a deployment replaces it): its transaction gave its events their
                // positions itself. The claim is still rolled forward as far as it is not.
                tracing::warn!(
                    last,
                    claim_last = claim.last(),
                    "the counter moved past its claim without one of its own"
                );
            }
            self.roll_found(&claim).await?;
        }
        self.remember(last);
        Ok(last)
    }

    /// Writes `claim` on the counter if the counter is still at `last`. `false` when
    /// another sequencer claimed first: its claim, which the failed write returns, is rolled
    /// forward before the caller plans again.
    pub(super) async fn claim(&self, last: u64, claim: &Claim) -> Result<bool, StoreError> {
        let mut update = self
            .log
            .client
            .update_item()
            .table_name(&self.log.table)
            .set_key(Some(key(keys::GLOBAL_COUNTER_PK, keys::COUNTER_SK)))
            .update_expression("SET #last = :new, #claim = :claim")
            .expression_attribute_names("#last", keys::COUNTER_LAST)
            .expression_attribute_names("#claim", keys::COUNTER_CLAIM)
            .expression_attribute_values(":new", n(claim.last()))
            .expression_attribute_values(":claim", s(claim.encode()?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = if last == 0 {
            update.condition_expression("attribute_not_exists(#last)")
        } else {
            update
                .condition_expression("#last = :old")
                .expression_attribute_values(":old", n(last))
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(err) => {
                let Some(UpdateItemError::ConditionalCheckFailedException(lost)) =
                    err.as_service_error()
                else {
                    // Perhaps written, perhaps not: the next round's conditional claim, or
                    // a cold start, finds out from the counter itself.
                    self.forget();
                    return Err(from_sdk("UpdateItem", err));
                };
                self.forget();
                let counter = lost.item();
                // The SDK resent a write that had succeeded (its first answer was lost):
                // the counter holds this very claim. It is ours to roll forward.
                if let Some(counter) = counter {
                    if claim_of(counter)?.as_ref() == Some(claim)
                        && counter_value(Some(counter))? == claim.last()
                    {
                        return Ok(true);
                    }
                }
                match counter {
                    Some(counter) => {
                        self.settle_item(Some(counter)).await?;
                    }
                    None => {
                        self.settle_in_turn().await?;
                    }
                }
                Ok(false)
            }
        }
    }

    /// Rolls forward a claim this sequencer has just written: nothing of it is done yet.
    pub(super) async fn roll(&self, claim: &Claim) -> Result<(), StoreError> {
        self.write_roll(claim.placements().collect()).await
    }

    /// Rolls forward a claim found on the counter, which its writer may have rolled
    /// forward in part or in full: one consistent read of its events (concurrent
    /// `BatchGetItem`s), then only what is missing is written. An event that holds another
    /// position is reported, never overwritten.
    async fn roll_found(&self, claim: &Claim) -> Result<(), StoreError> {
        let wanted: Vec<(String, String)> = claim
            .placements()
            .map(|(run, v, _)| (keys::stream_pk(&run.stream), keys::version_sk(v)))
            .collect();
        let items = self.batch_get(&wanted).await?;
        let mut positions = Vec::new();
        for (run, version, position) in claim.placements() {
            let event = (keys::stream_pk(&run.stream), keys::version_sk(version));
            match items
                .get(&event)
                .and_then(|e| number(e, keys::GLOBAL_POSITION))
            {
                Some(p) if p == position => {}
                Some(p) => {
                    return Err(StoreError::corrupt(format!(
                        "position {position} was claimed for {} version {version}, \
                         which holds position {p}",
                        run.stream
                    )))
                }
                None => positions.push((run, version, position)),
            }
        }
        if !positions.is_empty() {
            tracing::info!(
                first = claim.first,
                positions = positions.len(),
                "rolling forward a claim another round left"
            );
        }
        self.write_roll(positions).await
    }

    /// Writes `positions` (run, version, position), at most [`ROLL_CONCURRENCY`] writes in
    /// flight. Order does not matter: a round plans on a stream's positions only once the
    /// claim is fully rolled forward (or knows its runs' ends), and whoever rolls a claim
    /// forward later checks every event of it.
    async fn write_roll(&self, positions: Vec<Placement<'_>>) -> Result<(), StoreError> {
        // Collected first: a lazy map inside the stream would not be `Send` for every
        // lifetime, which the Lambda runtime needs.
        let writes: Vec<_> = positions
            .into_iter()
            .map(|(run, version, position)| self.give_position(&run.stream, version, position))
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(ROLL_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Gives one event its position, unless it has it already. Any other position on it
    /// would mean a position handed out twice: that is reported, never overwritten.
    async fn give_position(
        &self,
        stream: &str,
        version: u64,
        position: u64,
    ) -> Result<(), StoreError> {
        let result = self
            .log
            .client
            .update_item()
            .table_name(&self.log.table)
            .set_key(Some(key(
                keys::stream_pk(stream),
                keys::version_sk(version),
            )))
            .update_expression("SET #pos = :pos, #bucket = :bucket")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#pos) OR #pos = :pos)",
            )
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#pos", keys::GLOBAL_POSITION)
            .expression_attribute_names("#bucket", keys::GLOBAL_BUCKET)
            .expression_attribute_values(":pos", n(position))
            .expression_attribute_values(":bucket", n(keys::global_bucket(position)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if failed_condition(&err) => Err(StoreError::corrupt(format!(
                "position {position} was claimed for {stream} version {version}, which is \
                     missing or has another position"
            ))),
            Err(err) => Err(from_sdk("UpdateItem", err)),
        }
    }
}
