//! One read-plan-claim-roll round: finds where each hinted stream's sequenced prefix ends,
//! asks the planner which unsequenced events one claim takes, writes the claim on the
//! counter conditioned on the counter's last value, and rolls it forward (`roll.rs`).
//!
//! Why it hands out every position exactly once: a claim is written only on the counter
//! value it was planned on, and only after the claim before it (the one the counter holds)
//! has been rolled forward; every claim's writer made sure of the one before it, so every
//! claim but the last is rolled forward. So when a round plans, the events holding a
//! position are exactly those of all claims, and each claim took a stream's events right
//! after the ones holding positions: a stream's positioned events are a prefix of it. The
//! round finds where that prefix ends (a stream's *boundary*), and no event is planned
//! twice.
//!
//! How a round finds the boundaries is `boundary.rs`.
//!
//! In the steady state (a warm sequencer, records that follow on from what it claimed) a
//! round reads nothing: it is the claim's `UpdateItem` and the roll's concurrent writes.

use std::collections::{HashMap, HashSet};

use eventstore_core::{StoreError, StreamId};
use futures::StreamExt;

use super::boundary::{Reading, Start};
use super::claim::{Claim, MAX_CLAIM_EVENTS};
use super::planner::{self, Found};
use super::{Images, Sequencer, StreamHint};
use crate::io::{batch_get_consistent, key, text, Item};
use crate::keys;

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
pub(super) type Key = (String, String);

pub(super) fn event_key(stream: &str, version: u64) -> Key {
    (keys::stream_pk(stream), keys::version_sk(version))
}

impl Sequencer {
    /// One round over `chunk`; adds to `behind` the streams it found with unsequenced
    /// events.
    ///
    /// `unrolled` is the claim the round before wrote and has not rolled forward: it is
    /// rolled forward now, while this round reads, and before this round claims. The items
    /// read meanwhile may not show it yet, so its streams end where its runs end; every
    /// claim before it is rolled forward. A steady stream of rounds is then two dependent
    /// steps each: the reads (with the roll before), and the claim.
    pub(super) async fn round(
        &self,
        chunk: &[StreamHint],
        behind: &mut HashSet<StreamId>,
        images: &Images,
        unrolled: Option<Claim>,
    ) -> Result<Round, StoreError> {
        let last = match &unrolled {
            Some(before) => before.last(),
            None => self.settled_last().await?,
        };
        // Known boundaries are taken after the counter is settled: settling forgets them.
        let starts = self.starts(chunk, images, unrolled.as_ref());
        let wanted: Vec<Key> = chunk
            .iter()
            .zip(&starts)
            .flat_map(|(hint, start)| match start {
                Start::Images { first } => {
                    let before = (*first > 1).then(|| event_key(hint.stream.as_str(), first - 1));
                    before
                        .into_iter()
                        .chain([event_key(hint.stream.as_str(), *first)])
                        .collect()
                }
                _ => Vec::new(),
            })
            .collect();
        let items = match &unrolled {
            Some(before) => {
                let (rolled, items) = futures::join!(self.roll(before), self.batch_get(&wanted));
                if let Err(err) = rolled {
                    // The counter is past what this sequencer knows; the next round settles.
                    self.forget();
                    return Err(err);
                }
                self.remember(last);
                items?
            }
            None => self.batch_get(&wanted).await?,
        };
        self.plan_and_claim(chunk, behind, images, last, &starts, &items)
            .await
    }

    /// Finds each stream's boundary and unsequenced events, plans a claim on `last` and
    /// writes it.
    async fn plan_and_claim(
        &self,
        chunk: &[StreamHint],
        behind: &mut HashSet<StreamId>,
        images: &Images,
        last: u64,
        starts: &[Start],
        items: &HashMap<Key, Item>,
    ) -> Result<Round, StoreError> {
        // Collected first: a lazy map inside the stream would not be `Send` for every
        // lifetime, which the Lambda runtime needs.
        let reads: Vec<_> = chunk
            .iter()
            .zip(starts)
            .map(|(hint, start)| self.unsequenced(hint, start, images, items))
            .collect();
        let read: Vec<Result<Reading, StoreError>> = futures::stream::iter(reads)
            .buffered(QUERY_CONCURRENCY)
            .collect()
            .await;
        let mut done = vec![false; chunk.len()];
        let mut found = Vec::with_capacity(read.len());
        let mut exact = Vec::with_capacity(read.len());
        for (slot, result) in read.into_iter().enumerate() {
            let Reading {
                head,
                events,
                exact: is_exact,
            } = result?;
            exact.push(is_exact);
            let hint = &chunk[slot];
            if head >= hint.version {
                done[slot] = true;
            } else if events.is_empty() {
                // The hint names a version the table does not hold: a forged or edited
                // record. There is nothing to sequence.
                tracing::warn!(stream = %hint.stream, hinted = hint.version, head,
                    "stream hint beyond the stored events; ignored");
                done[slot] = true;
            } else {
                behind.insert(hint.stream.clone());
            }
            found.push(Found {
                stream: hint.stream.as_str().to_owned(),
                head,
                events,
            });
        }

        let takes = planner::pack(&found, planner::Budget::CLAIM);
        let claim = planner::place(&found, &takes, last);
        let oldest = found
            .iter()
            .zip(&takes)
            .flat_map(|(f, &take)| f.events[..take].iter().map(|e| &e.created_at))
            .min()
            .cloned();
        if let Some(claim) = &claim {
            if !self.claim(last, claim).await? {
                return Ok(Round::Lost);
            }
        }
        // The boundaries as they are once the claim is rolled forward, for the next rounds:
        // only exact ones.
        self.learn(
            found
                .iter()
                .zip(&takes)
                .zip(&exact)
                .filter(|(_, &is_exact)| is_exact)
                .map(|((f, &take), _)| (f.stream.as_str(), f.head + take as u64)),
        );
        for (slot, (f, &take)) in found.iter().zip(&takes).enumerate() {
            done[slot] = done[slot] || f.head + take as u64 >= chunk[slot].version;
        }
        Ok(Round::Committed {
            done,
            claim,
            oldest,
        })
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
