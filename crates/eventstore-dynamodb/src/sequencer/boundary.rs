//! Where a stream's sequenced prefix ends (its *boundary*), and the events after it, as a
//! round (`round.rs`) needs them. Cheapest first:
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

use std::collections::{HashMap, VecDeque};

use eventstore_core::{StoreError, StreamId};

use super::claim::{Claim, MAX_CLAIM_EVENTS};
use super::planner::Unsequenced;
use super::round::{event_key, Key};
use super::{Images, Sequencer, StreamHint};
use crate::io::{number, Item};
use crate::item::parse;
use crate::keys;
use crate::log::Attributes;

/// The first page of a Query backward for a stream's boundary: usually only the last few
/// events lack a position. Later pages are [`MAX_CLAIM_EVENTS`] long.
const FIRST_WALK_PAGE: usize = 16;

/// What a round found of one stream: its boundary (`head`), the events after it (up to a
/// claim's worth) and whether `head` is exact. It is not when the hinted event already
/// holds a position and nothing after it was read: the boundary is then at least the hint,
/// which is all the round needs, but remembering it as the boundary could make a later
/// round plan events that hold positions.
pub(super) struct Reading {
    pub head: u64,
    pub events: Vec<Unsequenced>,
    pub exact: bool,
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
pub(super) enum Start {
    /// Its boundary is known: the last version holding a position.
    Known(u64),
    /// Its images hold `first..=hint`: the items read at `first - 1` and `first` tell.
    Images { first: u64 },
    /// Found by a Query backward from the hint.
    Walk,
}

impl Sequencer {
    /// Where each stream of `chunk` starts, from what is known without reading.
    pub(super) fn starts(
        &self,
        chunk: &[StreamHint],
        images: &Images,
        rolled: Option<&Claim>,
    ) -> Vec<Start> {
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

    /// A stream's boundary and, if it is below the hint, the events after it in version
    /// order, as many as one claim can take.
    pub(super) async fn unsequenced(
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
}
