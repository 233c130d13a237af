//! The event log on DynamoDB: the core's `EventLog` port on one events table. Reads are
//! here; Queries and index cursors in `query`, conditional writes in `write`.

use aws_sdk_dynamodb::Client;
use eventstore_core::limits::MAX_EVENTS_PER_APPEND;
use eventstore_core::{
    EventLog, GlobalFilter, IndexEnd, IndexPage, LogPage, NewEvent, RecordedEvent, StateEvent,
    StatePage, StoreError, StreamId, StreamTail, Timestamp, WriteConflict,
};
use uuid::Uuid;

use crate::error::from_sdk;
use crate::io::{counter_value, get_consistent, number, text, Item};
use crate::item::{decode, decode_state};
use crate::keys;
use crate::schema::create_events_table;

mod query;
mod write;

pub(crate) use query::{project, Attributes};

/// Index entries a type or category read asks for per Query: it passes over the events of
/// other types, so it reads the index in large pages (DynamoDB also stops a page at 1 MB).
const FILTERED_QUERY_ITEMS: usize = 1000;
/// Positions one read of the global order may pass over before it returns what it has,
/// with `next` after them: bounds the time and read units of a type or category read that
/// finds few of its events, as an API request must be.
const MAX_POSITIONS_PER_READ: usize = 10_000;

/// Whether an item of `GlobalOrder` is an event of `filter`, from its attributes alone (the
/// category is stored on every event).
fn of_filter(item: &Item, filter: &GlobalFilter) -> bool {
    match filter {
        GlobalFilter::All => true,
        GlobalFilter::EventType(t) => text(item, keys::EVENT_TYPE) == Some(t.as_str()),
        GlobalFilter::Category(c) => text(item, keys::CATEGORY) == Some(c.as_str()),
    }
}

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
        // Every read walks `GlobalOrder`, bucket by bucket, position by position: positions
        // are dense, so the first one missing is a hole, whatever the filter. A type or
        // category read keeps the events of its filter and passes over the others.
        let mut events: Vec<RecordedEvent> = Vec::new();
        let mut bytes = 0usize;
        let mut next = from;
        let mut passed = 0usize;
        let mut bucket = keys::global_bucket(from);
        loop {
            let want = match filter {
                // One more than asked tells whether a further page exists.
                GlobalFilter::All => limit + 1 - events.len(),
                _ => FILTERED_QUERY_ITEMS,
            };
            // Each page asks for the positions from `next` on, never with a start key: one
            // just below `next` would fall outside the key condition, which DynamoDB
            // refuses.
            let page = self.query_bucket(bucket, next, want).await?;
            let shown = page.items.len();
            for item in page.items {
                let position = number(&item, keys::GLOBAL_POSITION)
                    .ok_or_else(|| StoreError::corrupt("an indexed event without a position"))?;
                if position != next {
                    let end = if position > next {
                        IndexEnd::Hole
                    } else {
                        return Err(StoreError::corrupt(format!(
                            "GlobalOrder shows position {position} where {next} was expected"
                        )));
                    };
                    return Ok(IndexPage { events, next, end });
                }
                if of_filter(&item, filter) {
                    let event = decode(item)?;
                    let size = event.payload_bytes();
                    if events.len() == limit || (bytes + size > max_bytes && !events.is_empty()) {
                        return Ok(IndexPage {
                            events,
                            next,
                            end: IndexEnd::Full,
                        });
                    }
                    bytes += size;
                    events.push(event);
                }
                next = position.saturating_add(1);
                passed += 1;
                if passed >= MAX_POSITIONS_PER_READ {
                    return Ok(IndexPage {
                        events,
                        next,
                        end: IndexEnd::Full,
                    });
                }
            }
            let bucket_done = keys::last_position_of_bucket(bucket).is_some_and(|last| next > last);
            match page.last_key {
                // A bucket is exhausted. Only if it was full up to its last position can
                // the next bucket continue the sequence without a gap.
                _ if bucket_done => bucket = bucket.saturating_add(1),
                // More of this bucket, from `next` (which the page moved on).
                Some(_) if shown > 0 => {}
                _ => {
                    return Ok(IndexPage {
                        events,
                        next,
                        end: IndexEnd::End,
                    })
                }
            }
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
