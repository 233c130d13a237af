//! One read-plan-claim-roll round: reads the hinted streams' heads consistently, asks the
//! planner which unsequenced events one claim takes, writes the claim on the counter
//! conditioned on the counter's last value, and rolls it forward (`roll.rs`).
//!
//! Why it hands out every position exactly once: a claim is written only on the counter
//! value it was planned on, and only after the claim before it (the one the counter holds)
//! has been rolled forward; every claim's writer made sure of the one before it, so every
//! claim but the last is rolled forward. The heads are read after that, so they show every
//! event of every claim, and no event is planned twice.

use std::collections::{HashMap, HashSet};

use eventstore_core::{StoreError, StreamId};
use futures::StreamExt;

use super::claim::{Claim, MAX_CLAIM_EVENTS};
use super::planner::{self, Found, Unsequenced};
use super::{Images, Sequencer, StreamHint};
use crate::io::{batch_get_consistent, key, number, text, Item};
use crate::item::parse;
use crate::keys;
use crate::log::Attributes;

/// Consistent Queries in flight at once while a round reads its streams.
const QUERY_CONCURRENCY: usize = 8;
/// Most events a stream's images stand in for in one round: what one claim takes.
pub(super) const MAX_EVENTS_FROM_IMAGES: u64 = MAX_CLAIM_EVENTS as u64;

/// How a round ended.
pub(super) enum Round {
    /// Claimed (or nothing to do); `done[i]` tells whether stream `i` of the round's chunk
    /// is finished once `claim` is rolled forward. `oldest` is the earliest `createdAt`
    /// among the events it claimed. The caller rolls the claim forward: alongside the next
    /// round's reads, or at the end.
    Committed {
        done: Vec<bool>,
        claim: Option<Claim>,
        oldest: Option<String>,
    },
    /// Another sequencer claimed first. Its claim is rolled forward; nothing of this
    /// round's was written.
    Lost,
}

/// An item of the events table by its (PK, SK).
type Key = (String, String);

pub(super) fn head_key(stream: &str) -> Key {
    (keys::stream_pk(stream), keys::HEAD_SK.to_owned())
}

fn event_key(stream: &StreamId, version: u64) -> Key {
    (keys::stream_pk(stream.as_str()), keys::version_sk(version))
}

pub(super) fn head_value(item: Option<&Item>) -> Result<u64, StoreError> {
    let Some(item) = item else { return Ok(0) };
    number(item, keys::SEQUENCED_VERSION)
        .ok_or_else(|| StoreError::corrupt("a stream head without a valid sequencedVersion"))
}

impl Sequencer {
    /// One round over `chunk`; adds to `behind` the streams it found with unsequenced
    /// events.
    ///
    /// `unrolled` is the claim the round before wrote and has not rolled forward: it is
    /// rolled forward now, while this round reads, and before this round claims. The heads
    /// read meanwhile may not show it yet, so its runs count as sequenced; every claim before
    /// it is rolled forward, so the heads show those. A steady stream of rounds is then two
    /// dependent steps each: the reads (with the roll before), and the claim.
    ///
    /// With `trust`, a stream whose records' new images hold every event from its head to
    /// its hint is not read again: the images are the events, once the hinted version is
    /// read to exist (with the heads, in the same `BatchGetItem`). Without it (after a lost
    /// round), every stream is read with a Query. In the steady state a round is a
    /// `BatchGetItem`, the claim's `UpdateItem`, and the roll's concurrent writes.
    pub(super) async fn round(
        &self,
        chunk: &[StreamHint],
        behind: &mut HashSet<StreamId>,
        images: &Images,
        trust: bool,
        unrolled: Option<Claim>,
    ) -> Result<Round, StoreError> {
        let (last, items) = match &unrolled {
            Some(before) => {
                let (rolled, items) =
                    futures::join!(self.roll(before), self.read_heads(chunk, trust));
                if let Err(err) = rolled {
                    // The counter is past what this sequencer knows; the next round settles.
                    self.forget();
                    return Err(err);
                }
                self.remember(before.last());
                (before.last(), items?)
            }
            None => {
                let last = self.settled_last().await?;
                (last, self.read_heads(chunk, trust).await?)
            }
        };
        self.plan_and_claim(chunk, behind, images, trust, last, items, unrolled.as_ref())
            .await
    }

    /// The heads of `chunk`'s streams and, with `trust`, their hinted events, read
    /// consistently.
    async fn read_heads(
        &self,
        chunk: &[StreamHint],
        trust: bool,
    ) -> Result<HashMap<Key, Item>, StoreError> {
        let mut wanted: Vec<Key> = chunk.iter().map(|h| head_key(h.stream.as_str())).collect();
        if trust {
            // The hinted version of every stream the images cover: a claim names only
            // events that exist, since a position handed to nothing would be a hole for
            // good. Events are never deleted and versions are dense, so the hinted one
            // existing proves every one before it does.
            wanted.extend(chunk.iter().map(|h| event_key(&h.stream, h.version)));
        }
        self.batch_get(&wanted).await
    }

    /// Plans a claim on `last` from the heads and events read (`items`), and writes it.
    /// `rolled` is the claim rolled forward while they were read: the heads may not show
    /// its runs yet, so each of its streams is sequenced at least to its run's end.
    #[allow(clippy::too_many_arguments)]
    async fn plan_and_claim(
        &self,
        chunk: &[StreamHint],
        behind: &mut HashSet<StreamId>,
        images: &Images,
        trust: bool,
        last: u64,
        items: HashMap<Key, Item>,
        rolled: Option<&Claim>,
    ) -> Result<Round, StoreError> {
        let claimed: HashMap<&str, u64> = rolled
            .iter()
            .flat_map(|c| c.runs.iter().map(|r| (r.stream.as_str(), r.to)))
            .collect();
        let mut done = vec![false; chunk.len()];
        let mut to_read = Vec::new();
        for (slot, hint) in chunk.iter().enumerate() {
            let head = head_value(items.get(&head_key(hint.stream.as_str())))?
                .max(claimed.get(hint.stream.as_str()).copied().unwrap_or(0));
            if head >= hint.version {
                done[slot] = true;
            } else {
                behind.insert(hint.stream.clone());
                to_read.push((slot, head));
            }
        }
        let read: Vec<(usize, u64, Result<Vec<Unsequenced>, StoreError>)> =
            futures::stream::iter(to_read)
                .map(|(slot, head)| {
                    let items = &items;
                    async move {
                        let hint = &chunk[slot];
                        let stored = items.contains_key(&event_key(&hint.stream, hint.version));
                        let events = match images.after(hint, head).filter(|_| trust && stored) {
                            Some(events) => Ok(events),
                            None => self.unsequenced(&hint.stream, head).await,
                        };
                        (slot, head, events)
                    }
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
                stream: chunk[slot].stream.as_str().to_owned(),
                head,
                events,
            });
        }

        let takes = planner::pack(&found, planner::Budget::CLAIM);
        let Some(claim) = planner::place(&found, &takes, last) else {
            return Ok(Round::Committed {
                done,
                claim: None,
                oldest: None,
            });
        };
        let oldest = found
            .iter()
            .zip(&takes)
            .flat_map(|(f, &take)| f.events[..take].iter().map(|e| &e.created_at))
            .min()
            .cloned();

        if !self.claim(last, &claim).await? {
            return Ok(Round::Lost);
        }
        for ((i, f), &take) in found.iter().enumerate().zip(&takes) {
            let slot = slots[i];
            done[slot] = done[slot] || f.head + take as u64 >= chunk[slot].version;
        }
        Ok(Round::Committed {
            done,
            claim: Some(claim),
            oldest,
        })
    }

    /// The stream's events after `head`, in version order, as many as one claim can take,
    /// read consistently. Versions are dense, so they must start at `head + 1`.
    async fn unsequenced(
        &self,
        stream: &StreamId,
        head: u64,
    ) -> Result<Vec<Unsequenced>, StoreError> {
        let first = head.saturating_add(1);
        let mut events: Vec<Unsequenced> = Vec::new();
        let mut start = None;
        loop {
            let want = MAX_CLAIM_EVENTS - events.len();
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
                Some(key) if events.len() < MAX_CLAIM_EVENTS => start = Some(key),
                _ => return Ok(events),
            }
        }
    }

    /// Reads `wanted` consistently, keyed by (PK, SK): one BatchGetItem per 100 keys, all
    /// at once, so a round over hundreds of streams still reads in one round trip.
    pub(super) async fn batch_get(&self, wanted: &[Key]) -> Result<HashMap<Key, Item>, StoreError> {
        let reads: Vec<_> = wanted
            .chunks(MAX_BATCH_GET_KEYS)
            .map(|keys| {
                batch_get_consistent(
                    &self.log.client,
                    &self.log.table,
                    keys.iter().map(|(pk, sk)| key(pk, sk)).collect(),
                )
            })
            .collect();
        let pages = futures::future::try_join_all(reads).await?;
        Ok(pages
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let pk = text(&item, keys::PK)?.to_owned();
                let sk = text(&item, keys::SK)?.to_owned();
                Some(((pk, sk), item))
            })
            .collect())
    }
}

/// Keys one BatchGetItem takes.
const MAX_BATCH_GET_KEYS: usize = 100;

/// The claim a counter item holds, if any (counters written before claims hold none).
pub(super) fn claim_of(counter: &Item) -> Result<Option<Claim>, StoreError> {
    text(counter, keys::COUNTER_CLAIM)
        .map(Claim::decode)
        .transpose()
}
