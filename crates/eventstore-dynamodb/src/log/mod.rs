//! The event log on DynamoDB: the core's `EventLog` port on one events table. Reads are
//! here; Queries and index cursors in `query`, conditional writes in `write`.

use aws_sdk_dynamodb::Client;
use eventstore_core::limits::MAX_EVENTS_PER_APPEND;
use eventstore_core::{
    EventLog, GlobalFilter, IndexPage, IndexedEvent, LogPage, NewEvent, RecordedEvent, StateEvent,
    StatePage, StoreError, StreamId, StreamTail, Timestamp, WriteConflict,
};
use uuid::Uuid;

use crate::error::from_sdk;
use crate::io::{counter_value, get_consistent};
use crate::item::{decode, decode_indexed, decode_state};
use crate::keys;
use crate::schema::create_events_table;

mod query;
mod write;

pub(crate) use query::{project, Attributes};
use query::{IndexKey, PositionBound};

/// The events table, seen through the core's [`EventLog`] port.
#[derive(Debug, Clone)]
pub struct DynamoEventLog {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoEventLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates this log's table for local use if it is missing (see [`create_events_table`]).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        create_events_table(&self.client, &self.table).await
    }

    /// The ARN of the table's stream, which feeds the sequencer.
    pub async fn stream_arn(&self) -> Result<String, StoreError> {
        let out = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| from_sdk("DescribeTable", e))?;
        out.table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| StoreError::corrupt(format!("table {} has no stream", self.table)))
    }
}

impl EventLog for DynamoEventLog {
    async fn tail(&self, stream: &StreamId, ids: usize) -> Result<StreamTail, StoreError> {
        let mut newest_first = self.ids_in(stream, (1, u64::MAX), true, ids.max(1)).await?;
        let version = newest_first.first().map_or(0, |(v, _)| *v);
        newest_first.truncate(ids);
        Ok(StreamTail {
            version,
            last_ids: newest_first.into_iter().rev().map(|(_, id)| id).collect(),
        })
    }

    async fn write(
        &self,
        stream: &StreamId,
        first: u64,
        events: &[NewEvent],
        created_at: Timestamp,
        require_previous: bool,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        match events {
            [] => Ok(Ok(())),
            [event] if !require_previous => self.put_one(stream, first, event, created_at).await,
            _ if require_previous && events.len() + 1 > MAX_EVENTS_PER_APPEND => {
                // A transaction holds at most 100 actions, so a full batch has no room for the
                // check on the previous version. Events are never deleted, so a consistent read
                // that finds it stays true until the transaction runs.
                if !self.version_exists(stream, first - 1).await? {
                    return Ok(Err(WriteConflict::PreviousMissing));
                }
                self.transact(stream, first, events, created_at, false)
                    .await
            }
            _ => {
                self.transact(stream, first, events, created_at, require_previous)
                    .await
            }
        }
    }

    async fn event_ids(
        &self,
        stream: &StreamId,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Uuid)>, StoreError> {
        let count = usize::try_from(to.saturating_sub(from) + 1).unwrap_or(usize::MAX);
        self.ids_in(stream, (from, to), false, count).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        backward: bool,
        limit: usize,
        max_bytes: usize,
    ) -> Result<LogPage, StoreError> {
        let range = if backward {
            (1, from)
        } else {
            (from, u64::MAX)
        };
        let (events, more) = self
            .read_versions(
                stream,
                range,
                backward,
                (limit, max_bytes),
                Attributes::All,
                decode,
                RecordedEvent::payload_bytes,
            )
            .await?;
        Ok(LogPage { events, more })
    }

    async fn read_stream_state(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<StatePage, StoreError> {
        let (events, more) = self
            .read_versions(
                stream,
                (from, u64::MAX),
                false,
                (limit, max_bytes),
                Attributes::State,
                decode_state,
                StateEvent::payload_bytes,
            )
            .await?;
        Ok(StatePage { events, more })
    }

    async fn read_index(
        &self,
        filter: &GlobalFilter,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<IndexPage, StoreError> {
        let mut entries: Vec<IndexedEvent> = Vec::new();
        let mut bytes = 0usize;
        let mut index = IndexKey::of(filter, from);
        let mut start = None;
        loop {
            // One more than asked tells whether a further page exists.
            let want = limit + 1 - entries.len();
            let page = self
                .query_index(&index, PositionBound::AtLeast(from), want, start.take())
                .await?;
            let mut last_position = None;
            for item in page.items {
                let entry = decode_indexed(item, filter)?;
                let size = entry.event.payload_bytes();
                if entries.len() == limit || (bytes + size > max_bytes && !entries.is_empty()) {
                    return Ok(IndexPage {
                        entries,
                        more: true,
                    });
                }
                last_position = entry.event.global_position;
                bytes += size;
                entries.push(entry);
            }
            match page.last_key {
                Some(key) => start = Some(key),
                // A bucket of `$all` is exhausted. Only if it was full up to its last
                // position can the next bucket continue the sequence without a gap.
                None if matches!(index, IndexKey::Bucket(_))
                    && last_position.is_some()
                    && last_position == index.last_position_of_bucket() =>
                {
                    index = index.next_bucket();
                }
                None => {
                    return Ok(IndexPage {
                        entries,
                        more: false,
                    })
                }
            }
        }
    }

    async fn sequence_before(&self, filter: &GlobalFilter, before: u64) -> Result<u64, StoreError> {
        // `$all` is numbered by position itself.
        if *filter == GlobalFilter::All {
            return Ok(before.saturating_sub(1));
        }
        if before <= 1 {
            return Ok(0);
        }
        let page = self
            .query_index(
                &IndexKey::of(filter, before),
                PositionBound::Below(before),
                1,
                None,
            )
            .await?;
        match page.items.into_iter().next() {
            Some(item) => Ok(decode_indexed(item, filter)?.sequence),
            None => Ok(0),
        }
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        let item = get_consistent(
            &self.client,
            &self.table,
            keys::GLOBAL_COUNTER_PK,
            keys::COUNTER_SK,
        )
        .await?;
        counter_value(item.as_ref())
    }
}
