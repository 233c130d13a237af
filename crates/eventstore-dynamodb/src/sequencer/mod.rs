//! The sequencer: gives every event its global position, 1, 2, 3, ... with no gap and no
//! duplicate, each event exactly once, and a stream's events in version order.
//!
//! It is driven by the table's DynamoDB Stream, but trusts nothing about the records: they
//! arrive at least once, ordered only per item, possibly on several shards at once. A record
//! is only a hint that a stream has events up to some version. The truth is in the table:
//!
//! * each stream's head item (`STREAM#<id>`, `HEAD`) holds the last version sequenced;
//! * the counter item (`COUNTER#ALL`) holds the last position handed out, and one counter
//!   per event type and per category holds the last number of that dense sub-sequence.
//!
//! A round reads the heads and counters consistently, reads each hinted stream's events after
//! its head with a consistent Query, and commits in one `TransactWriteItems`: every counter
//! and head advances conditioned on the value it was read at, and every event gets its
//! position conditioned on having none. A racing sequencer makes one of the two transactions
//! fail as a whole, and the loser re-reads and goes again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use eventstore_core::{StoreError, StreamId, Timestamp};
use futures::StreamExt;

use crate::error::from_sdk;
use crate::event_source::{retry_batch, LocalEventSource};
use crate::item::{parse, Item};
use crate::keys;
use crate::log::{
    batch_get_consistent, conflict_backoff, counter_value, transact_conditionally, DynamoEventLog,
};
use crate::metrics::{self, Metrics};

mod repair;
mod sweep;
mod trigger;

/// DynamoDB's limit of actions in one transaction.
const MAX_TRANSACTION_ACTIONS: usize = 100;
/// Kept well under DynamoDB's 4 MB limit on the items a transaction touches.
const MAX_TRANSACTION_BYTES: usize = 3 * 1024 * 1024;
/// Streams handled per round: their heads and category counters, plus the global counter,
/// fit one BatchGetItem (100 keys).
const STREAMS_PER_ROUND: usize = 48;
/// Consistent Queries in flight at once while a round reads its streams.
const QUERY_CONCURRENCY: usize = 8;
/// Rounds in a row that may lose to another writer of the counters before the sequencer
/// gives up for now (the batch is then retried by the event source).
const MAX_LOST_ROUNDS: u32 = 40;
/// Index entries a sweep reads per Query page; each page is sequenced before the next.
const SWEEP_PAGE: i32 = 100;
/// A sweep reads no new page after this long (the function's timeout is 60 s); what it
/// leaves stays in the index for the next sweep.
const SWEEP_BUDGET: Duration = Duration::from_secs(40);

/// The Lambda event filter the sequencer's event source applies: inserts of event items
/// only. `infra/template.yaml` declares the same pattern (a test keeps them equal), and the
/// local event source applies it too.
pub const EVENT_INSERTS_FILTER: &str =
    r#"{"eventName":["INSERT"],"dynamodb":{"Keys":{"SK":{"S":[{"prefix":"VERSION#"}]}}}}"#;

/// A stream has events up to `version` (perhaps already sequenced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHint {
    pub stream: StreamId,
    pub version: u64,
}

/// What a call to [`Sequencer::sequence`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SequenceReport {
    /// Events given a position by this call.
    pub events: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Rounds lost to another sequencer and retried.
    pub lost_rounds: u64,
    /// The longest time from append to position among the events sequenced, in ms.
    pub max_lag_ms: Option<u64>,
    /// Hinted streams that had unsequenced events when first read.
    pub streams_behind: u64,
}

/// What a call to [`Sequencer::sweep`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Streams the sweep found with unsequenced appends and sequenced.
    pub streams: u64,
    /// Events given a position.
    pub events: u64,
    /// The longest time from append to position among them, in ms.
    #[serde(skip)]
    pub max_lag_ms: Option<u64>,
}

/// The input the template's schedule sends the sequencer function (a test keeps them equal).
pub const SWEEP_INPUT: &str = r#"{"sweep":{"olderThanSeconds":60}}"#;

/// What the sequencer function is invoked with: a batch of stream records, or the schedule's
/// sweep.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    Sweep { sweep: SweepRequest },
    Stream(Box<Event>),
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SweepRequest {
    pub older_than_seconds: u64,
}

/// Gives positions to the events of one events table.
#[derive(Debug, Clone)]
pub struct Sequencer {
    log: DynamoEventLog,
}

/// An event read after its stream's head, as much of it as sequencing needs.
#[derive(Debug, Clone)]
struct Unsequenced {
    version: u64,
    event_type: String,
    /// An upper estimate of the item's size, for the transaction's size limit.
    bytes: usize,
    created_at: String,
}

/// The events of one stream chosen for a round's transaction.
#[derive(Debug)]
struct Chosen {
    slot: usize,
    head: u64,
    events: Vec<Unsequenced>,
}

enum Round {
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

type Key = (String, String);

fn key_item(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (keys::PK.to_owned(), AttributeValue::S(key.0.clone())),
        (keys::SK.to_owned(), AttributeValue::S(key.1.clone())),
    ])
}

fn head_key(stream: &StreamId) -> Key {
    (keys::stream_pk(stream.as_str()), keys::HEAD_SK.to_owned())
}

fn counter_key(pk: String) -> Key {
    (pk, keys::COUNTER_SK.to_owned())
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl Sequencer {
    pub fn new(log: DynamoEventLog) -> Self {
        Self { log }
    }

    pub fn log(&self) -> &DynamoEventLog {
        &self.log
    }

    /// The local event source that feeds this sequencer as the template's event source
    /// mapping feeds the Lambda: the table's stream, the same filter, the same batch size.
    pub async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        LocalEventSource::for_table(&self.log, EVENT_INSERTS_FILTER).await
    }

    /// Sequences every hinted stream at least up to its hinted version (and whatever else
    /// of it is unsequenced when it is read). Safe to call with stale, repeated or
    /// reordered hints, and from several processes at once.
    pub async fn sequence(&self, hints: &[StreamHint]) -> Result<SequenceReport, StoreError> {
        // One hint per stream, in first-seen order, with its highest version.
        let mut slots: HashMap<&StreamId, usize> = HashMap::new();
        let mut pending: Vec<StreamHint> = Vec::new();
        for hint in hints {
            match slots.get(&hint.stream) {
                Some(&slot) => pending[slot].version = pending[slot].version.max(hint.version),
                None => {
                    slots.insert(&hint.stream, pending.len());
                    pending.push(hint.clone());
                }
            }
        }
        let mut behind: HashSet<StreamId> = HashSet::new();
        let mut report = SequenceReport::default();
        let mut lost_in_a_row = 0;
        while !pending.is_empty() {
            let chunk = pending.len().min(STREAMS_PER_ROUND);
            match self.round(&pending[..chunk], &mut behind).await? {
                Round::Committed {
                    done,
                    events,
                    oldest,
                } => {
                    let lag = oldest
                        .as_deref()
                        .and_then(Timestamp::parse)
                        .map(|t| t.elapsed_millis());
                    report.max_lag_ms = report.max_lag_ms.max(lag);
                    lost_in_a_row = 0;
                    report.events += events;
                    report.transactions += u64::from(events > 0);
                    let mut slot = 0;
                    pending.retain(|_| {
                        let keep = slot >= chunk || !done[slot];
                        slot += 1;
                        keep
                    });
                }
                Round::Lost => {
                    report.lost_rounds += 1;
                    lost_in_a_row += 1;
                    if lost_in_a_row >= MAX_LOST_ROUNDS {
                        return Err(StoreError::Unavailable {
                            message: "the sequencer kept losing races for the counters".into(),
                            source: None,
                        });
                    }
                    tokio::time::sleep(conflict_backoff(lost_in_a_row.min(4))).await;
                }
            }
        }
        report.streams_behind = behind.len() as u64;
        Ok(report)
    }

    /// One read-decide-commit round over `chunk`; adds to `behind` the streams it found with
    /// unsequenced events.
    async fn round(
        &self,
        chunk: &[StreamHint],
        behind: &mut HashSet<StreamId>,
    ) -> Result<Round, StoreError> {
        let global_key = counter_key(keys::GLOBAL_COUNTER_PK.to_owned());
        let mut wanted = vec![global_key.clone()];
        wanted.extend(chunk.iter().map(|h| head_key(&h.stream)));
        for hint in chunk {
            let key = counter_key(keys::category_counter_pk(hint.stream.category().as_str()));
            if !wanted.contains(&key) {
                wanted.push(key);
            }
        }
        let mut counters = self.batch_get(&wanted).await?;

        let mut done = vec![false; chunk.len()];
        let mut to_read = Vec::new();
        for (slot, hint) in chunk.iter().enumerate() {
            let head = head_value(counters.get(&head_key(&hint.stream)))?;
            if head >= hint.version {
                done[slot] = true;
            } else {
                behind.insert(hint.stream.clone());
                to_read.push((slot, head));
            }
        }
        let found: Vec<(usize, u64, Result<Vec<Unsequenced>, StoreError>)> =
            futures::stream::iter(to_read)
                .map(|(slot, head)| async move {
                    (
                        slot,
                        head,
                        self.unsequenced(&chunk[slot].stream, head).await,
                    )
                })
                .buffered(QUERY_CONCURRENCY)
                .collect()
                .await;

        // Choose what fits one transaction: the global counter, then per stream its head,
        // its category's counter and its events' type counters (each counter once).
        let mut actions = 1;
        let mut bytes = 0;
        let mut types: HashSet<String> = HashSet::new();
        let mut categories: HashSet<String> = HashSet::new();
        let mut chosen: Vec<Chosen> = Vec::new();
        for (slot, head, events) in found {
            let events = events?;
            if events.is_empty() {
                // The hint names a version the table does not hold: a forged or edited
                // record. There is nothing to sequence.
                tracing::warn!(stream = %chunk[slot].stream, hinted = chunk[slot].version, head,
                    "stream hint beyond the stored events; ignored");
                done[slot] = true;
                continue;
            }
            let category = chunk[slot].stream.category().as_str().to_owned();
            let mut stream_types = types.clone();
            let mut cost = 1 + usize::from(!categories.contains(&category));
            let mut size = 0;
            let mut take = 0;
            for event in &events {
                let extra = 1 + usize::from(!stream_types.contains(&event.event_type));
                if actions + cost + extra > MAX_TRANSACTION_ACTIONS
                    || bytes + size + event.bytes > MAX_TRANSACTION_BYTES
                {
                    break;
                }
                stream_types.insert(event.event_type.clone());
                cost += extra;
                size += event.bytes;
                take += 1;
            }
            if take == 0 {
                break;
            }
            actions += cost;
            bytes += size;
            types = stream_types;
            categories.insert(category);
            let mut events = events;
            events.truncate(take);
            chosen.push(Chosen { slot, head, events });
        }
        if chosen.is_empty() {
            return Ok(Round::Committed {
                done,
                events: 0,
                oldest: None,
            });
        }
        let oldest = chosen
            .iter()
            .flat_map(|c| c.events.iter().map(|e| &e.created_at))
            .min()
            .cloned();

        let type_keys: Vec<Key> = types
            .iter()
            .map(|t| counter_key(keys::type_counter_pk(t)))
            .collect();
        counters.extend(self.batch_get(&type_keys).await?);

        let global = counter_value(counters.get(&global_key))?;
        let mut next = Counters::default();
        let mut position = global;
        let mut writes = Vec::with_capacity(actions);
        let mut events_written = 0;
        for c in &chosen {
            let stream = &chunk[c.slot].stream;
            let category_pk = keys::category_counter_pk(stream.category().as_str());
            for event in &c.events {
                position += 1;
                let type_pk = keys::type_counter_pk(&event.event_type);
                let type_sequence = next.bump(&type_pk, &counters)?;
                let category_sequence = next.bump(&category_pk, &counters)?;
                writes.push(self.position_update(
                    stream,
                    event.version,
                    position,
                    type_sequence,
                    category_sequence,
                )?);
                events_written += 1;
            }
            let new_head = c.head + c.events.len() as u64;
            writes.push(self.advance(
                &head_key(stream),
                keys::SEQUENCED_VERSION,
                c.head,
                new_head,
            )?);
            done[c.slot] = new_head >= chunk[c.slot].version;
        }
        writes.push(self.advance(&global_key, keys::COUNTER_LAST, global, position)?);
        for (pk, (old, new)) in &next.0 {
            writes.push(self.advance(&counter_key(pk.clone()), keys::COUNTER_LAST, *old, *new)?);
        }

        // Lost to another writer of a head or counter: the round is re-read and retried.
        if transact_conditionally(&self.log.client, writes).await? {
            Ok(Round::Committed {
                done,
                events: events_written,
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
                .query_versions(stream, (first, u64::MAX), false, want, false, start)
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
                events.push(Unsequenced {
                    version: item.version,
                    bytes: item.data.len()
                        + item.metadata.len()
                        + 2 * item.stream_id.len()
                        + item.event_type.len()
                        + 512,
                    event_type: item.event_type,
                    created_at: item.created_at,
                });
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
            wanted.iter().map(key_item).collect(),
        )
        .await?;
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some(((text(keys::PK)?, text(keys::SK)?), item))
            })
            .collect())
    }

    fn position_update(
        &self,
        stream: &StreamId,
        version: u64,
        position: u64,
        type_sequence: u64,
        category_sequence: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.log.table)
            .key(
                keys::PK,
                AttributeValue::S(keys::stream_pk(stream.as_str())),
            )
            .key(keys::SK, AttributeValue::S(keys::version_sk(version)))
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
            .expression_attribute_values(":pos", number(position))
            .expression_attribute_values(":bucket", number(keys::global_bucket(position)))
            .expression_attribute_values(":ts", number(type_sequence))
            .expression_attribute_values(":cs", number(category_sequence))
            .build()
            .map_err(|e| StoreError::internal("building an Update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Moves a head or counter from `old` to `new`, only if it still holds `old`.
    fn advance(
        &self,
        key: &Key,
        attribute: &str,
        old: u64,
        new: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.log.table)
            .set_key(Some(key_item(key)))
            .update_expression("SET #v = :new")
            .expression_attribute_names("#v", attribute)
            .expression_attribute_values(":new", number(new));
        update = if old == 0 {
            update.condition_expression("attribute_not_exists(#v)")
        } else {
            update
                .condition_expression("#v = :old")
                .expression_attribute_values(":old", number(old))
        };
        let update = update
            .build()
            .map_err(|e| StoreError::internal("building an Update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// Values a round moves its type and category counters to, from the values read.
#[derive(Default)]
struct Counters(HashMap<String, (u64, u64)>);

impl Counters {
    fn bump(&mut self, pk: &str, read: &HashMap<Key, Item>) -> Result<u64, StoreError> {
        if !self.0.contains_key(pk) {
            let old = counter_value(read.get(&counter_key(pk.to_owned())))?;
            self.0.insert(pk.to_owned(), (old, old));
        }
        let entry = self
            .0
            .get_mut(pk)
            .ok_or_else(|| StoreError::corrupt("counter vanished from the round"))?;
        entry.1 += 1;
        Ok(entry.1)
    }
}

fn head_value(item: Option<&Item>) -> Result<u64, StoreError> {
    let Some(item) = item else { return Ok(0) };
    item.get(keys::SEQUENCED_VERSION)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::corrupt("a stream head without a valid sequencedVersion"))
}

/// The stream and version an event item's stream record names; `None` for other items.
pub fn hint_of(record: &EventRecord) -> Option<StreamHint> {
    let text = |k: &str| match record.change.keys.get(k) {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    };
    let stream = keys::stream_of_pk(text(keys::PK)?)?;
    let version = keys::parse_version_sk(text(keys::SK)?)?;
    Some(StreamHint {
        stream: StreamId::stored(stream, "streamId").ok()?,
        version,
    })
}

impl crate::event_source::StreamConsumer for Sequencer {
    async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        Sequencer::local_source(self).await
    }

    async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        Sequencer::handle(self, event).await
    }
}
