//! Reading one stream: the read arguments, a page of events forward or backward with the
//! `from` of the next page, and the stream's current version.

use super::{validate_from, validate_limit, EventStore};
use crate::limits::{DEFAULT_READ_LIMIT, MAX_READ_PAGE_BYTES};
use crate::port::LogPage;
use crate::{Category, EventLog, RecordedEvent, StoreError, StreamId};

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

impl<L: EventLog> EventStore<L> {
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
}
