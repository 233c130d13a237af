//! Reading the global order (`$all`, or one event type or category) page by page, never
//! past a hole in an eventually consistent index, waiting a little for a lagging one.

use std::time::Duration;

use super::{validate_from, validate_limit, EventStore};
use crate::limits::MAX_READ_PAGE_BYTES;
use crate::{EventLog, GlobalFilter, IndexEnd, RecordedEvent, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalPage {
    pub events: Vec<RecordedEvent>,
    /// The position to read from next; a reader keeps it as its checkpoint.
    pub next: u64,
    /// The page stopped at a limit (events, bytes, or the positions one read passes over)
    /// rather than at what the index shows: more can be read at once from `next`. A type
    /// or category page can be empty and still have more.
    pub more: bool,
}

impl<L: EventLog> EventStore<L> {
    /// A page of the global order, restricted by `filter`, from position `from`.
    ///
    /// The global-order index is eventually consistent: it may show position 12 before 11.
    /// Positions are dense, so a hole is visible, and a page ends before the first one,
    /// whatever the filter: a reader that follows `next` never skips an event. `next` moves
    /// over the positions of other types and categories too, so a filtered reader's
    /// checkpoint keeps up with the log even when none of its events come. When the page
    /// comes up short because the index lags, the read waits a little (at most
    /// [`INDEX_LAG_WAITS`] in all) for it to catch up, then returns what is safe.
    pub async fn read_global(
        &self,
        filter: &GlobalFilter,
        from: Option<u64>,
        limit: usize,
    ) -> Result<GlobalPage, StoreError> {
        validate_limit(limit)?;
        let from = from.unwrap_or(1);
        validate_from(from)?;
        let mut events: Vec<RecordedEvent> = Vec::new();
        let mut next = from;
        let mut bytes = 0usize;
        let mut waits = INDEX_LAG_WAITS.iter();
        loop {
            let page = self
                .log
                .read_index(
                    filter,
                    next,
                    limit - events.len(),
                    MAX_READ_PAGE_BYTES.saturating_sub(bytes),
                )
                .await?;
            if page.next < next {
                return Err(StoreError::corrupt("a global-order read went backwards"));
            }
            for event in page.events {
                let position = event.global_position.ok_or_else(|| {
                    StoreError::corrupt("an indexed event without a global position")
                })?;
                let size = event.payload_bytes();
                if bytes + size > MAX_READ_PAGE_BYTES && !events.is_empty() {
                    return Ok(GlobalPage {
                        events,
                        next: position,
                        more: true,
                    });
                }
                bytes += size;
                events.push(event);
            }
            next = page.next;
            if events.len() >= limit || page.end == IndexEnd::Full {
                return Ok(GlobalPage {
                    events,
                    next,
                    more: page.end == IndexEnd::Full,
                });
            }
            // The page is short. It is the true end unless the index hides something: a
            // hole, or positions the counter has handed out but the index does not show yet.
            // An empty page does not ask the counter: a caught-up reader polls often and
            // would read the sequencer's hottest item on every poll, for nothing but
            // latency, since reading again from `next` never skips. The counter is asked
            // only when the page brought events.
            let lagging = page.end == IndexEnd::Hole
                || (!events.is_empty() && next <= self.log.last_position().await?);
            match waits.next() {
                Some(wait) if lagging => tokio::time::sleep(*wait).await,
                _ => {
                    return Ok(GlobalPage {
                        events,
                        next,
                        more: false,
                    })
                }
            }
        }
    }
}

/// The longest a reader may ask [`EventStore::read_global_waiting`] to wait: it fits API
/// Gateway's 30-second integration timeout with room for the read itself.
pub const MAX_READ_WAIT: Duration = Duration::from_secs(25);

/// How often a waiting read looks for the event it waits for. It bounds both the delay
/// between an event becoming readable and the waiting reader's answer, and the cost of a
/// waiting reader: one index probe (one entry asked for, eventually consistent) per interval.
pub const READ_WAIT_POLL: Duration = Duration::from_millis(250);

impl<L: EventLog> EventStore<L> {
    /// [`EventStore::read_global`], but when the page starting at `from` would be empty,
    /// holding on until an event at `from` or later is readable or `wait` (at most
    /// [`MAX_READ_WAIT`]) has passed: long polling. While it waits it probes the index alone
    /// (`read_index` for one entry) every [`READ_WAIT_POLL`], not the counter item; once the
    /// probe shows an event it reads the page as `read_global` does, so the never-skip
    /// guarantee is the same.
    pub async fn read_global_waiting(
        &self,
        filter: &GlobalFilter,
        from: Option<u64>,
        limit: usize,
        wait: Duration,
    ) -> Result<GlobalPage, StoreError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_READ_WAIT);
        let mut from = from;
        loop {
            let page = self.read_global(filter, from, limit).await?;
            if !page.events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(page);
            }
            if page.more {
                // A type or category read passed over its limit of other events: go on
                // at once.
                from = Some(page.next);
                continue;
            }
            // Nothing yet: probe cheaply until the index shows something. Each probe starts
            // where the last one stopped, so a reader waiting for a rare type passes over
            // the other events once, not on every probe.
            let mut start = page.next;
            loop {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Ok(GlobalPage {
                        events: Vec::new(),
                        next: start,
                        more: false,
                    });
                }
                tokio::time::sleep(READ_WAIT_POLL.min(deadline - now)).await;
                let probe = self
                    .log
                    .read_index(filter, start, 1, MAX_READ_PAGE_BYTES)
                    .await?;
                if !probe.events.is_empty() {
                    break;
                }
                start = start.max(probe.next);
                if probe.end == IndexEnd::Full {
                    // It passed over its limit of other events: read on from there now.
                    break;
                }
            }
            from = Some(start);
        }
    }
}

/// How long a global read waits, in turn, for a lagging index before it returns what is
/// safe. GSIs usually catch up within a fraction of a second.
pub const INDEX_LAG_WAITS: [Duration; 4] = [
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
];
