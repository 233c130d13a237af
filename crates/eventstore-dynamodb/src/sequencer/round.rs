//! One read-plan-commit round: reads the heads and counters consistently, each hinted
//! stream's events after its head, asks the planner what fits one transaction and where it
//! goes, and commits that plan conditioned on every value it read.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use eventstore_core::{StoreError, StreamId};
use futures::StreamExt;

use super::planner::{self, Budget, Counter, Found, Unsequenced, MAX_TRANSACTION_ACTIONS};
use super::{Images, Sequencer, StreamHint};
use crate::io::{
    batch_get_consistent, counter_value, key, n, number, text, transact_conditionally, Item,
};
use crate::item::parse;
use crate::keys;
use crate::log::Attributes;

/// Consistent Queries in flight at once while a round reads its streams.
const QUERY_CONCURRENCY: usize = 8;
/// Keys one BatchGetItem takes.
const MAX_BATCH_GET_KEYS: usize = 100;
/// Most events a stream's images stand in for in one round: what one transaction takes.
pub(super) const MAX_EVENTS_FROM_IMAGES: u64 = MAX_TRANSACTION_ACTIONS as u64;

/// How a round ended.
pub(super) enum Round {
    /// Committed; `done[i]` tells whether stream `i` of the round's chunk is finished.
    /// `oldest` is the earliest `createdAt` among the events it sequenced.
    Committed {
        done: Vec<bool>,
        events: u64,
        oldest: Option<String>,
    },
    /// Another writer moved a head or counter first; nothing was written.
    Lost,
}

/// An item of the events table by its (PK, SK).
type Key = (String, String);

fn head_key(stream: &StreamId) -> Key {
    (keys::stream_pk(stream.as_str()), keys::HEAD_SK.to_owned())
}

fn counter_key(counter: &Counter) -> Key {
    let pk = match counter {
        Counter::Type(event_type) => keys::type_counter_pk(event_type),
        Counter::Category(category) => keys::category_counter_pk(category),
    };
    (pk, keys::COUNTER_SK.to_owned())
}

fn global_key() -> Key {
    (
        keys::GLOBAL_COUNTER_PK.to_owned(),
        keys::COUNTER_SK.to_owned(),
    )
}

fn head_value(item: Option<&Item>) -> Result<u64, StoreError> {
    let Some(item) = item else { return Ok(0) };
    number(item, keys::SEQUENCED_VERSION)
        .ok_or_else(|| StoreError::corrupt("a stream head without a valid sequencedVersion"))
}

impl Sequencer {
    /// One read-plan-commit round over `chunk`; adds to `behind` the streams it found with
    /// unsequenced events.
    ///
    /// With `trust`, a stream whose records' new images hold every event from its head to
    /// its hint is not read again: the images are the events (the steady state, where a
    /// round is one `BatchGetItem` and one `TransactWriteItems`). Without it (after a lost
    /// round, which is also what a record naming no stored event causes), every stream is
    /// read with a Query.
    pub(super) async fn round(
        &self,
        chunk: &[StreamHint],
        behind: &mut HashSet<StreamId>,
        images: &Images,
        trust: bool,
    ) -> Result<Round, StoreError> {
        let mut wanted = vec![global_key()];
        wanted.extend(chunk.iter().map(|h| head_key(&h.stream)));
        for hint in chunk {
            let key = counter_key(&Counter::Category(
                hint.stream.category().as_str().to_owned(),
            ));
            if !wanted.contains(&key) {
                wanted.push(key);
            }
        }
        // The type counters the images name, read now rather than in a second request,
        // as far as one BatchGetItem's 100 keys go.
        if trust {
            for hint in chunk {
                for event in images.of(&hint.stream) {
                    let key = counter_key(&Counter::Type(event.event_type.clone()));
                    if wanted.len() < MAX_BATCH_GET_KEYS && !wanted.contains(&key) {
                        wanted.push(key);
                    }
                }
            }
        }
        let mut items = self.batch_get(&wanted).await?;

        let mut done = vec![false; chunk.len()];
        let mut to_read = Vec::new();
        for (slot, hint) in chunk.iter().enumerate() {
            let head = head_value(items.get(&head_key(&hint.stream)))?;
            if head >= hint.version {
                done[slot] = true;
            } else {
                behind.insert(hint.stream.clone());
                to_read.push((slot, head));
            }
        }
        let read: Vec<(usize, u64, Result<Vec<Unsequenced>, StoreError>)> =
            futures::stream::iter(to_read)
                .map(|(slot, head)| async move {
                    let hint = &chunk[slot];
                    let events = match images.after(hint, head).filter(|_| trust) {
                        Some(events) => Ok(events),
                        None => self.unsequenced(&hint.stream, head).await,
                    };
                    (slot, head, events)
                })
                .buffered(QUERY_CONCURRENCY)
                .collect()
                .await;
        let mut slots = Vec::with_capacity(read.len());
        let mut found = Vec::with_capacity(read.len());
        for (slot, head, events) in read {
            let events = events?;
            if events.is_empty() {
                // The hint names a version the table does not hold: a forged or edited
                // record. There is nothing to sequence.
                tracing::warn!(stream = %chunk[slot].stream, hinted = chunk[slot].version, head,
                    "stream hint beyond the stored events; ignored");
                done[slot] = true;
            }
            slots.push(slot);
            found.push(Found {
                category: chunk[slot].stream.category().as_str().to_owned(),
                head,
                events,
            });
        }

        let takes = planner::pack(&found, Budget::DYNAMODB);
        if takes.iter().all(|&t| t == 0) {
            return Ok(Round::Committed {
                done,
                events: 0,
                oldest: None,
            });
        }
        let oldest = found
            .iter()
            .zip(&takes)
            .flat_map(|(f, &take)| f.events[..take].iter().map(|e| &e.created_at))
            .min()
            .cloned();
        let counters = planner::counters(&found, &takes);
        let type_keys: Vec<Key> = counters
            .iter()
            .filter(|c| matches!(c, Counter::Type(_)))
            .map(counter_key)
            .filter(|key| !wanted.contains(key))
            .collect();
        items.extend(self.batch_get(&type_keys).await?);
        let mut values = BTreeMap::new();
        for counter in counters {
            let value = counter_value(items.get(&counter_key(&counter)))?;
            values.insert(counter, value);
        }
        let global = counter_value(items.get(&global_key()))?;
        let plan = planner::place(&found, &takes, global, &values);

        let mut writes = Vec::with_capacity(MAX_TRANSACTION_ACTIONS);
        for placed in &plan.placed {
            writes.push(self.position_update(&chunk[slots[placed.stream]].stream, placed)?);
        }
        for (i, head) in &plan.heads {
            let slot = slots[*i];
            writes.push(self.advance(
                &head_key(&chunk[slot].stream),
                keys::SEQUENCED_VERSION,
                head.old,
                head.new,
            )?);
            done[slot] = head.new >= chunk[slot].version;
        }
        writes.push(self.advance(
            &global_key(),
            keys::COUNTER_LAST,
            plan.global.old,
            plan.global.new,
        )?);
        for (counter, moved) in &plan.counters {
            writes.push(self.advance(
                &counter_key(counter),
                keys::COUNTER_LAST,
                moved.old,
                moved.new,
            )?);
        }

        // Lost to another writer of a head or counter: the round is re-read and retried.
        if transact_conditionally(&self.log.client, writes).await? {
            Ok(Round::Committed {
                done,
                events: plan.placed.len() as u64,
                oldest,
            })
        } else {
            Ok(Round::Lost)
        }
    }

    /// The stream's events after `head`, in version order, as many as one transaction can
    /// take, read consistently. Versions are dense, so they must start at `head + 1`.
    async fn unsequenced(
        &self,
        stream: &StreamId,
        head: u64,
    ) -> Result<Vec<Unsequenced>, StoreError> {
        let first = head.saturating_add(1);
        let mut events: Vec<Unsequenced> = Vec::new();
        let mut start = None;
        loop {
            let want = MAX_TRANSACTION_ACTIONS - events.len();
            let page = self
                .log
                .query_versions(
                    stream,
                    (first, u64::MAX),
                    false,
                    want,
                    Attributes::All,
                    start,
                )
                .await?;
            for item in page.items {
                let item = parse(item)?;
                if item.version != first + events.len() as u64 {
                    return Err(StoreError::corrupt(format!(
                        "stream {stream} has version {} after sequenced version {}",
                        item.version,
                        first - 1 + events.len() as u64
                    )));
                }
                events.push(Unsequenced::of(item));
            }
            match page.last_key {
                Some(key) if events.len() < MAX_TRANSACTION_ACTIONS => start = Some(key),
                _ => return Ok(events),
            }
        }
    }

    /// Reads `wanted` (heads and counters) consistently, keyed by (PK, SK).
    async fn batch_get(&self, wanted: &[Key]) -> Result<HashMap<Key, Item>, StoreError> {
        let items = batch_get_consistent(
            &self.log.client,
            &self.log.table,
            wanted.iter().map(|(pk, sk)| key(pk, sk)).collect(),
        )
        .await?;
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let pk = text(&item, keys::PK)?.to_owned();
                let sk = text(&item, keys::SK)?.to_owned();
                Some(((pk, sk), item))
            })
            .collect())
    }

    fn position_update(
        &self,
        stream: &StreamId,
        placed: &planner::Placed,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.log.table)
            .set_key(Some(key(
                keys::stream_pk(stream.as_str()),
                keys::version_sk(placed.version),
            )))
            // REMOVE: the event leaves the sparse `Unsequenced` index (a no-op for events
            // that were not the last of their append).
            .update_expression(
                "SET #pos = :pos, #bucket = :bucket, #ts = :ts, #cs = :cs REMOVE #unsequenced",
            )
            // `attribute_exists(PK)`: never create an item; `attribute_not_exists(position)`:
            // never give an event a second position.
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#pos)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#pos", keys::GLOBAL_POSITION)
            .expression_attribute_names("#bucket", keys::GLOBAL_BUCKET)
            .expression_attribute_names("#ts", keys::TYPE_SEQUENCE)
            .expression_attribute_names("#cs", keys::CATEGORY_SEQUENCE)
            .expression_attribute_names("#unsequenced", keys::UNSEQUENCED_SHARD)
            .expression_attribute_values(":pos", n(placed.position))
            .expression_attribute_values(":bucket", n(keys::global_bucket(placed.position)))
            .expression_attribute_values(":ts", n(placed.type_sequence))
            .expression_attribute_values(":cs", n(placed.category_sequence))
            .build()
            .map_err(|e| StoreError::internal("building an Update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Moves a head or counter from `old` to `new`, only if it still holds `old`.
    fn advance(
        &self,
        item: &Key,
        attribute: &str,
        old: u64,
        new: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.log.table)
            .set_key(Some(key(&item.0, &item.1)))
            .update_expression("SET #v = :new")
            .expression_attribute_names("#v", attribute)
            .expression_attribute_values(":new", n(new));
        update = if old == 0 {
            update.condition_expression("attribute_not_exists(#v)")
        } else {
            update
                .condition_expression("#v = :old")
                .expression_attribute_values(":old", n(old))
        };
        let update = update
            .build()
            .map_err(|e| StoreError::internal("building an Update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}
