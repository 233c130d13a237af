//! Reading the global order (`$all`, or one event type or category) page by page, never
//! past a hole in an eventually consistent index, waiting a little for a lagging one.

use std::time::Duration;

use super::{validate_from, validate_limit, EventStore};
use crate::limits::MAX_READ_PAGE_BYTES;
use crate::{EventLog, GlobalFilter, RecordedEvent, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalPage {
    pub events: Vec<RecordedEvent>,
    /// The position to read from next; a reader keeps it as its checkpoint.
    pub next: u64,
}

impl<L: EventLog> EventStore<L> {
    /// A page of the global order, restricted by `filter`, from position `from`.
    ///
    /// Indexes are eventually consistent: one may show position 12 before 11. Every index
    /// numbers its events densely (positions for `$all`; per type and per category
    /// sequences otherwise), so a hole is visible, and a page ends before the first one. A
    /// reader that follows `next` therefore never skips an event. When the page comes up
    /// short because the index lags, the read waits a little (at most
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
        let mut events = Vec::new();
        let mut next = from;
        let mut bytes = 0usize;
        // The index sequence the next event must carry. For a type or category it is one
        // past the last event of that index before `from`.
        let mut expected = match filter {
            GlobalFilter::All => from,
            _ => self
                .log
                .sequence_before(filter, from)
                .await?
                .saturating_add(1),
        };
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
            let shown = page.entries.len();
            let mut hole = false;
            for entry in page.entries {
                if entry.sequence != expected {
                    hole = true;
                    break;
                }
                let size = entry.event.payload_bytes();
                if bytes + size > MAX_READ_PAGE_BYTES && !events.is_empty() {
                    return Ok(GlobalPage { events, next });
                }
                let position = entry.event.global_position.ok_or_else(|| {
                    StoreError::corrupt("an indexed event without a global position")
                })?;
                bytes += size;
                next = position.saturating_add(1);
                expected = expected.saturating_add(1);
                events.push(entry.event);
            }
            if events.len() == limit || (page.more && !hole && shown > 0) {
                return Ok(GlobalPage { events, next });
            }
            // The page is short. It is the true end unless the index hides something: a
            // hole, or, for `$all`, positions the counter has handed out but the index does
            // not show yet. (A type or category has no cheap end marker; its reader simply
            // reads again from `next`, which is safe.) An empty page does not ask the
            // counter: a caught-up reader polls often and would read the sequencer's hottest
            // item on every poll, for nothing but latency, since reading again from `next`
            // never skips. The counter is asked only when the page brought events.
            let lagging = hole
                || (*filter == GlobalFilter::All
                    && !events.is_empty()
                    && next <= self.log.last_position().await?);
            match waits.next() {
                Some(wait) if lagging => tokio::time::sleep(*wait).await,
                _ => return Ok(GlobalPage { events, next }),
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
        let start = from.unwrap_or(1);
        loop {
            let page = self.read_global(filter, from, limit).await?;
            if !page.events.is_empty() {
                return Ok(page);
            }
            // Nothing yet: probe cheaply until the index shows something at `start`.
            loop {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Ok(page);
                }
                tokio::time::sleep(READ_WAIT_POLL.min(deadline - now)).await;
                let probe = self
                    .log
                    .read_index(filter, start, 1, MAX_READ_PAGE_BYTES)
                    .await?;
                if !probe.entries.is_empty() {
                    break;
                }
            }
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
