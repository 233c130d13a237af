//! Appending: expected-version semantics, a bounded retry when another writer wins the race
//! for the head, and the recognition of a request whose events are already stored.

use std::time::Duration;

use uuid::Uuid;

use super::EventStore;
use crate::limits::MAX_APPEND_ATTEMPTS;
use crate::version::versions_after;
use crate::{
    AppendBatch, EventLog, ExpectedVersion, StoreError, StreamId, Timestamp, WriteConflict,
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

impl<L: EventLog> EventStore<L> {
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
            // A client's expected version may never have been read: the write also checks
            // that version `current` exists, so that an append can never leave a gap.
            Some(version) => {
                self.append_at(stream, expected, version, batch, version > 0)
                    .await
            }
            None => self.append_after_head(stream, expected, batch).await,
        }
    }

    /// Appends right after `version`, which the caller has just read consistently (the
    /// repository's load): it exists, and events are never deleted, so the write needs no
    /// check of it. A single event is then one conditional put (1 WCU per KB) rather than
    /// a transaction. Same answers as [`EventStore::append`] at `Exact(version)`.
    pub(crate) async fn append_after_read(
        &self,
        stream: &StreamId,
        version: u64,
        batch: &AppendBatch,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_at(
            stream,
            ExpectedVersion::Exact(version),
            version,
            batch,
            false,
        )
        .await
    }

    async fn append_at(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        current: u64,
        batch: &AppendBatch,
        require_previous: bool,
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
            .write(
                stream,
                first,
                batch.events(),
                Timestamp::now(),
                require_previous,
            )
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
}

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
