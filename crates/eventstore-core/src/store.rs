//! The append and read semantics of the store, over any [`EventLog`].

use std::time::Duration;

use uuid::Uuid;

use crate::limits::{
    DEFAULT_READ_LIMIT, MAX_APPEND_ATTEMPTS, MAX_POSITION, MAX_READ_LIMIT, MAX_READ_PAGE_BYTES,
};
use crate::port::LogPage;
use crate::snapshot::{Snapshot, SnapshotStore, SnapshotWrite, MAX_SNAPSHOT_STATE_BYTES};
use crate::version::versions_after;
use crate::{
    AppendBatch, Category, EventData, EventLog, ExpectedVersion, GlobalFilter, RecordedEvent,
    StoreError, StreamId, Timestamp, ValidationError, WriteConflict,
};

/// What a successful append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stream_id: StreamId,
    pub from_version: u64,
    pub to_version: u64,
    pub event_ids: Vec<Uuid>,
    /// `false` when the same events were already stored at these versions: the request was
    /// a retry and nothing was written.
    pub created: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

/// How to read a stream. `from: None` means the first version forward, the last backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRead {
    pub from: Option<u64>,
    pub direction: Direction,
    pub limit: usize,
}

impl Default for StreamRead {
    fn default() -> Self {
        Self {
            from: None,
            direction: Direction::Forward,
            limit: DEFAULT_READ_LIMIT,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamPage {
    pub stream_id: StreamId,
    pub events: Vec<RecordedEvent>,
    /// The `from` of the following page, `None` at the end of the stream.
    pub next: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub stream_id: StreamId,
    pub category: Category,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalPage {
    pub events: Vec<RecordedEvent>,
    /// The position to read from next; a reader keeps it as its checkpoint.
    pub next: u64,
}

/// The event store: validation, expected-version semantics, idempotency and paging, on top
/// of a storage [`EventLog`].
#[derive(Debug, Clone)]
pub struct EventStore<L> {
    log: L,
}

pub(crate) fn validate_limit(limit: usize) -> Result<(), ValidationError> {
    if (1..=MAX_READ_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "limit",
            format!("must be between 1 and {MAX_READ_LIMIT}"),
        ))
    }
}

fn validate_from(from: u64) -> Result<(), ValidationError> {
    if (1..=MAX_POSITION).contains(&from) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "from",
            format!("must be between 1 and {MAX_POSITION}"),
        ))
    }
}

impl<L: EventLog> EventStore<L> {
    pub fn new(log: L) -> Self {
        Self { log }
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    /// Appends `batch` to `stream` atomically if `expected` holds.
    ///
    /// A pinned expectation (`Exact`, `NoStream`) is one conditional write. `Any` and
    /// `StreamExists` read the head first and retry, bounded, when another writer wins the race.
    /// Either way, a request whose events are already stored at the versions it would take
    /// (a retry after a lost response) succeeds with `created: false` and writes nothing.
    pub async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        batch: &AppendBatch,
    ) -> Result<AppendOutcome, StoreError> {
        match expected.pinned() {
            Some(version) => self.append_at(stream, expected, version, batch).await,
            None => self.append_after_head(stream, expected, batch).await,
        }
    }

    async fn append_at(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        current: u64,
        batch: &AppendBatch,
    ) -> Result<AppendOutcome, StoreError> {
        let Some((first, last)) = versions_after(current, batch.len()) else {
            // No stream can be at a version this close to u64::MAX.
            let actual = self.log.tail(stream, 0).await?.version;
            return Err(StoreError::WrongExpectedVersion {
                expected,
                current: actual,
            });
        };
        match self
            .log
            .write(stream, first, batch.events(), Timestamp::now(), current > 0)
            .await?
        {
            Ok(()) => Ok(outcome(stream, first, last, batch, true)),
            Err(conflict) => {
                if conflict == WriteConflict::VersionTaken
                    && self.already_stored(stream, first, last, batch).await?
                {
                    return Ok(outcome(stream, first, last, batch, false));
                }
                let actual = self.log.tail(stream, 0).await?.version;
                Err(StoreError::WrongExpectedVersion {
                    expected,
                    current: actual,
                })
            }
        }
    }

    async fn append_after_head(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        batch: &AppendBatch,
    ) -> Result<AppendOutcome, StoreError> {
        let ids = batch.ids();
        for attempt in 0..MAX_APPEND_ATTEMPTS {
            let tail = self.log.tail(stream, batch.len()).await?;
            if !expected.admits(tail.version) {
                return Err(StoreError::WrongExpectedVersion {
                    expected,
                    current: tail.version,
                });
            }
            if tail.last_ids == ids {
                // The same events, in the same order, are the last ones in the stream.
                let last = tail.version;
                let first = last + 1 - batch.len() as u64;
                return Ok(outcome(stream, first, last, batch, false));
            }
            let (first, last) = positions(tail.version, batch)?;
            // The head was just read, so version `first - 1` is known to exist and events are
            // never deleted: no need to re-check it in the write.
            match self
                .log
                .write(stream, first, batch.events(), Timestamp::now(), false)
                .await?
            {
                Ok(()) => return Ok(outcome(stream, first, last, batch, true)),
                // The write's own earlier attempt may have landed and only its answer got
                // lost (the SDK then retried into our own events): check before moving on.
                Err(_) if self.already_stored(stream, first, last, batch).await? => {
                    return Ok(outcome(stream, first, last, batch, false));
                }
                Err(_) => tokio::time::sleep(backoff(attempt)).await,
            }
        }
        Err(StoreError::Unavailable {
            message: format!(
                "the append lost the race for the stream's next version {MAX_APPEND_ATTEMPTS} times"
            ),
            source: None,
        })
    }

    async fn already_stored(
        &self,
        stream: &StreamId,
        first: u64,
        last: u64,
        batch: &AppendBatch,
    ) -> Result<bool, StoreError> {
        let stored = self.log.event_ids(stream, first, last).await?;
        Ok(stored.len() == batch.len()
            && stored
                .iter()
                .zip(batch.events())
                .zip(first..=last)
                .all(|(((version, id), event), want)| *version == want && *id == event.event_id))
    }

    /// The stream's current version and category; `StreamNotFound` when it has no events.
    pub async fn stream_info(&self, stream: &StreamId) -> Result<StreamInfo, StoreError> {
        let tail = self.log.tail(stream, 0).await?;
        if tail.version == 0 {
            return Err(StoreError::StreamNotFound(stream.to_string()));
        }
        Ok(StreamInfo {
            stream_id: stream.clone(),
            category: stream.category(),
            version: tail.version,
        })
    }

    /// A page of one stream; `StreamNotFound` when the stream has no events.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> Result<StreamPage, StoreError> {
        validate_limit(read.limit)?;
        if let Some(from) = read.from {
            validate_from(from)?;
        }
        let backward = read.direction == Direction::Backward;
        let from = read.from.unwrap_or(if backward { u64::MAX } else { 1 });
        let LogPage { events, more } = self
            .log
            .read_stream(stream, from, backward, read.limit, MAX_READ_PAGE_BYTES)
            .await?;
        if events.is_empty() && self.log.tail(stream, 0).await?.version == 0 {
            return Err(StoreError::StreamNotFound(stream.to_string()));
        }
        let next = match events.last() {
            Some(last) if more && backward => last.version.checked_sub(1).filter(|v| *v > 0),
            Some(last) if more => last.version.checked_add(1),
            _ => None,
        };
        Ok(StreamPage {
            stream_id: stream.clone(),
            events,
            next,
        })
    }

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
            // reads again from `next`, which is safe.)
            let lagging =
                hole || (*filter == GlobalFilter::All && next <= self.log.last_position().await?);
            match waits.next() {
                Some(wait) if lagging => tokio::time::sleep(*wait).await,
                _ => return Ok(GlobalPage { events, next }),
            }
        }
    }
}

impl<L: EventLog + SnapshotStore> EventStore<L> {
    /// Stores a snapshot a client made of `stream` at `version` (the HTTP route). The
    /// version must exist in the stream; a newer stored snapshot is never replaced.
    pub async fn put_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        schema_version: u32,
        state: EventData,
    ) -> Result<Snapshot, StoreError> {
        if version == 0 || version > MAX_POSITION {
            return Err(ValidationError::new(
                "version",
                format!("must be between 1 and {MAX_POSITION}"),
            )
            .into());
        }
        if schema_version == 0 {
            return Err(ValidationError::new("schemaVersion", "must be at least 1").into());
        }
        let size = state.as_json().len();
        if size > MAX_SNAPSHOT_STATE_BYTES {
            return Err(StoreError::PayloadTooLarge {
                what: "state".into(),
                actual: size,
                limit: MAX_SNAPSHOT_STATE_BYTES,
            });
        }
        // Streams only grow, so a version seen here stays valid.
        let current = self.log.tail(stream, 0).await?.version;
        if version > current {
            return Err(ValidationError::new(
                "version",
                format!("is beyond the stream's current version {current}"),
            )
            .into());
        }
        let snapshot = Snapshot {
            version,
            schema_version,
            state,
            created_at: Timestamp::now(),
        };
        match self.log.save_snapshot(stream, &snapshot).await? {
            SnapshotWrite::Stored => Ok(snapshot),
            SnapshotWrite::Outdated { stored_version } => {
                Err(StoreError::SnapshotOutdated { stored_version })
            }
        }
    }

    /// The stream's snapshot, if one is stored.
    pub async fn get_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.log.load_snapshot(stream).await
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

fn positions(current: u64, batch: &AppendBatch) -> Result<(u64, u64), StoreError> {
    versions_after(current, batch.len())
        .ok_or_else(|| StoreError::corrupt("stream version would overflow u64"))
}

fn outcome(
    stream: &StreamId,
    first: u64,
    last: u64,
    batch: &AppendBatch,
    created: bool,
) -> AppendOutcome {
    AppendOutcome {
        stream_id: stream.clone(),
        from_version: first,
        to_version: last,
        event_ids: batch.ids(),
        created,
    }
}

/// Full-jitter exponential backoff: 2 ms doubling to 128 ms, a random point below it.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = 2u64 << attempt.min(6);
    Duration::from_micros(fastrand::u64(0..cap_ms * 1000))
}
