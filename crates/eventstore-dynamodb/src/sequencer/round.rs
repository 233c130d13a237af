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
//! Finding the boundary, cheapest first:
//!
//! * a stream of the claim rolled forward while this round reads ends where its run ends;
//! * a stream this sequencer planned or claimed since it last knew the counter ends where
//!   it left it ([`Sequencer`]'s `bounds`): if another sequencer had claimed since, the
//!   claim this round writes on the counter value it knows fails, and nothing planned on
//!   a stale boundary is written;
//! * a stream whose records' new images hold its events up to the hint: one consistent
//!   read of the first of them and the one before it (with every other such stream, in
//!   concurrent `BatchGetItem`s) says whether the prefix ends right before them;
//! * otherwise, a consistent Query backward from the hint to the first event holding a
//!   position.
//!
//! In the steady state (a warm sequencer, records that follow on from what it claimed) a
//! round reads nothing: it is the claim's `UpdateItem` and the roll's concurrent writes.

use std::collections::{HashMap, HashSet, VecDeque};

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
/// The first page of a Query backward for a stream's boundary: usually only the last few
/// events lack a position. Later pages are [`MAX_CLAIM_EVENTS`] long.
const FIRST_WALK_PAGE: usize = 16;

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

fn event_key(stream: &str, version: u64) -> Key {
    (keys::stream_pk(stream), keys::version_sk(version))
}

/// What a round found of one stream: its boundary (`head`), the events after it (up to a
/// claim's worth) and whether `head` is exact. It is not when the hinted event already
/// holds a position and nothing after it was read: the boundary is then at least the hint,
/// which is all the round needs, but remembering it as the boundary could make a later
/// round plan events that hold positions.
struct Reading {
    head: u64,
    events: Vec<Unsequenced>,
    exact: bool,
}

impl Reading {
    fn exact(head: u64, events: Vec<Unsequenced>) -> Self {
        Self {
            head,
            events,
            exact: true,
        }
    }
}

/// Where a round starts on a stream.
enum Start {
    /// Its boundary is known: the last version holding a position.
    Known(u64),
    /// Its images hold `first..=hint`: the items read at `first - 1` and `first` tell.
    Images { first: u64 },
    /// Found by a Query backward from the hint.
    Walk,
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

    /// Where each stream of `chunk` starts, from what is known without reading.
    fn starts(&self, chunk: &[StreamHint], images: &Images, rolled: Option<&Claim>) -> Vec<Start> {
        let claimed: HashMap<&str, u64> = rolled
            .iter()
            .flat_map(|c| c.runs.iter().map(|r| (r.stream.as_str(), r.to)))
            .collect();
        let bounds = self.bounds.lock().ok();
        chunk
            .iter()
            .map(|hint| {
                let known = claimed.get(hint.stream.as_str()).copied().or_else(|| {
                    bounds
                        .as_ref()
                        .and_then(|b| b.get(hint.stream.as_str()).copied())
                });
                match (known, images.first(hint)) {
                    (Some(boundary), _) => Start::Known(boundary),
                    (None, Some(first)) => Start::Images { first },
                    (None, None) => Start::Walk,
                }
            })
            .collect()
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

    /// A stream's boundary and, if it is below the hint, the events after it in version
    /// order, as many as one claim can take.
    async fn unsequenced(
        &self,
        hint: &StreamHint,
        start: &Start,
        images: &Images,
        items: &HashMap<Key, Item>,
    ) -> Result<Reading, StoreError> {
        let stream = hint.stream.as_str();
        let boundary = match *start {
            Start::Known(boundary) => boundary,
            Start::Images { first } => {
                let position = |version| {
                    items
                        .get(&event_key(stream, version))
                        .map(|item| number(item, keys::GLOBAL_POSITION))
                };
                // `Some(None)`: stored, without a position; `None`: not stored.
                match (
                    first == 1 || matches!(position(first - 1), Some(Some(_))),
                    position(first),
                ) {
                    (true, Some(None)) => first - 1,
                    // Positions reach into the images, or the prefix ends further back,
                    // or the first image names an event not stored.
                    _ => return self.walk_back(&hint.stream, hint.version).await,
                }
            }
            Start::Walk => return self.walk_back(&hint.stream, hint.version).await,
        };
        if boundary >= hint.version {
            return Ok(Reading::exact(boundary, Vec::new()));
        }
        if let Some(events) = images.from(hint, boundary + 1) {
            return Ok(Reading::exact(boundary, events));
        }
        match self.read_after(&hint.stream, boundary).await? {
            Some(events) => Ok(Reading::exact(boundary, events)),
            None => self.walk_back(&hint.stream, hint.version).await,
        }
    }

    /// Walks a stream backward from version `top` to the last event holding a position,
    /// with consistent Queries: that version (0 if none holds one) and the events after
    /// it, at most a claim's worth. If event `top` itself holds a position, the boundary
    /// is only known to be at least `top`.
    async fn walk_back(&self, stream: &StreamId, top: u64) -> Result<Reading, StoreError> {
        if top == 0 {
            // Versions count from 1: there is nothing to read.
            return Ok(Reading::exact(0, Vec::new()));
        }
        let mut events: VecDeque<Unsequenced> = VecDeque::new();
        let mut below: Option<u64> = None;
        let mut start = None;
        let mut limit = FIRST_WALK_PAGE;
        loop {
            let page = self
                .log
                .query_versions(stream, (1, top), true, limit, Attributes::All, start)
                .await?;
            for item in page.items {
                let item = parse(item)?;
                if below.is_some_and(|b| item.version + 1 != b) {
                    return Err(StoreError::corrupt(format!(
                        "stream {stream} has no version {}",
                        item.version + 1
                    )));
                }
                if item.global_position.is_some() {
                    // Exact if an event after it was seen without a position, or if nothing
                    // is stored after it (the hint was beyond the stream).
                    let exact = below.is_some() || item.version < top;
                    return Ok(Reading {
                        head: item.version,
                        events: events.into(),
                        exact,
                    });
                }
                below = Some(item.version);
                events.push_front(Unsequenced::of(item));
                if events.len() > MAX_CLAIM_EVENTS {
                    events.pop_back();
                }
            }
            match page.last_key {
                Some(key) => {
                    start = Some(key);
                    limit = MAX_CLAIM_EVENTS;
                }
                None => break,
            }
        }
        if below.is_some_and(|b| b != 1) {
            return Err(StoreError::corrupt(format!(
                "stream {stream} does not start at version 1"
            )));
        }
        Ok(Reading::exact(0, events.into()))
    }

    /// The stream's events after `head`, in version order, as many as one claim can take,
    /// read consistently. Versions are dense, so they must start at `head + 1`. `None` if
    /// one of them holds a position: `head` was stale (another sequencer went on since), and
    /// the caller walks back instead.
    async fn read_after(
        &self,
        stream: &StreamId,
        head: u64,
    ) -> Result<Option<Vec<Unsequenced>>, StoreError> {
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
                if item.global_position.is_some() {
                    return Ok(None);
                }
                events.push(Unsequenced::of(item));
            }
            match page.last_key {
                Some(key) if events.len() < MAX_CLAIM_EVENTS => start = Some(key),
                _ => return Ok(Some(events)),
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
