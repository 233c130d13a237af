use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, Select, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use eventstore_core::limits::MAX_EVENTS_PER_APPEND;
use eventstore_core::{
    EventLog, GlobalFilter, IndexPage, IndexedEvent, LogPage, NewEvent, RecordedEvent, StoreError,
    StreamId, StreamTail, Timestamp, WriteConflict,
};
use uuid::Uuid;

use crate::error::{
    cancellation_codes, classify_cancellation, from_sdk, from_transaction, Cancellation,
};
use crate::item::{decode, decode_indexed, new_item, version_and_id, Item};
use crate::keys;
use crate::schema::create_events_table;

/// Attempts of a transaction that DynamoDB cancels for `TransactionConflict` (another
/// transaction touching the same item at the same moment) or for throttling, before giving
/// up as unavailable.
const TRANSACTION_CONFLICT_ATTEMPTS: u32 = 5;

/// Jittered wait before retrying a write that met a concurrent transaction: 5 ms up to
/// 20 ms doubling per attempt.
pub(crate) fn conflict_backoff(attempt: u32) -> Duration {
    Duration::from_millis(fastrand::u64(5..(20u64 << attempt.min(6))))
}

/// The events table, seen through the core's [`EventLog`] port.
#[derive(Debug, Clone)]
pub struct DynamoEventLog {
    pub(crate) client: Client,
    pub(crate) table: String,
}

/// One page of a Query, its items and where the next page starts.
pub(crate) struct QueryPage {
    pub(crate) items: Vec<Item>,
    pub(crate) last_key: Option<HashMap<String, AttributeValue>>,
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

    /// One page of a consistent Query over a stream's versions `low..=high`.
    pub(crate) async fn query_versions(
        &self,
        stream: &StreamId,
        (low, high): (u64, u64),
        backward: bool,
        limit: usize,
        ids_only: bool,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<QueryPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", AttributeValue::S(keys::stream_pk(stream.as_str())))
            .expression_attribute_values(":low", AttributeValue::S(keys::version_sk(low)))
            .expression_attribute_values(":high", AttributeValue::S(keys::version_sk(high)))
            .scan_index_forward(!backward)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        if ids_only {
            query = query
                .select(Select::SpecificAttributes)
                .projection_expression("#sk, #id")
                .expression_attribute_names("#id", keys::EVENT_ID);
        }
        let out = query.send().await.map_err(|e| from_sdk("Query", e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    /// One page of a Query over a global-order index (eventually consistent: GSIs offer
    /// nothing else).
    async fn query_index(
        &self,
        index: &IndexKey,
        bound: PositionBound,
        limit: usize,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<QueryPage, StoreError> {
        let (name, partition, value) = index.parts();
        let (condition, position, forward) = match bound {
            PositionBound::AtLeast(p) => ("#k = :k AND #p >= :p", p, true),
            PositionBound::Below(p) => ("#k = :k AND #p < :p", p, false),
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(name)
            .key_condition_expression(condition)
            .expression_attribute_names("#k", partition)
            .expression_attribute_names("#p", keys::GLOBAL_POSITION)
            .expression_attribute_values(":k", value)
            .expression_attribute_values(":p", AttributeValue::N(position.to_string()))
            .scan_index_forward(forward)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    /// Version and id of up to `count` events in `range`, following every page.
    async fn ids_in(
        &self,
        stream: &StreamId,
        range: (u64, u64),
        backward: bool,
        count: usize,
    ) -> Result<Vec<(u64, Uuid)>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .query_versions(stream, range, backward, count - found.len(), true, start)
                .await?;
            for item in &page.items {
                found.push(version_and_id(item)?);
            }
            match page.last_key {
                Some(key) if found.len() < count => start = Some(key),
                _ => return Ok(found),
            }
        }
    }

    async fn put_one(
        &self,
        stream: &StreamId,
        version: u64,
        event: &NewEvent,
        created_at: Timestamp,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let item = new_item(stream, version, event, created_at, true)?;
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Ok(())),
                Err(SdkError::ServiceError(se))
                    if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
                {
                    return Ok(Err(WriteConflict::VersionTaken));
                }
                // A transaction is writing the same item right now: wait for it to settle,
                // then the condition decides.
                Err(SdkError::ServiceError(se))
                    if matches!(se.err(), PutItemError::TransactionConflictException(_))
                        && attempt + 1 < TRANSACTION_CONFLICT_ATTEMPTS =>
                {
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(from_sdk("PutItem", e)),
            }
        }
    }

    /// Whether the item at `version` exists, read consistently.
    async fn version_exists(&self, stream: &StreamId, version: u64) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key(
                keys::PK,
                AttributeValue::S(keys::stream_pk(stream.as_str())),
            )
            .key(keys::SK, AttributeValue::S(keys::version_sk(version)))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", keys::PK)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", e))?;
        Ok(out.item.is_some())
    }

    async fn transact(
        &self,
        stream: &StreamId,
        first: u64,
        events: &[NewEvent],
        created_at: Timestamp,
        check_previous: bool,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let pk = AttributeValue::S(keys::stream_pk(stream.as_str()));
        let mut actions = Vec::with_capacity(events.len() + 1);
        if check_previous {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key(keys::PK, pk.clone())
                .key(keys::SK, AttributeValue::S(keys::version_sk(first - 1)))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .build()
                .map_err(|e| StoreError::internal("building a condition check", e))?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let last = first + events.len() as u64 - 1;
        for (event, version) in events.iter().zip(first..) {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(new_item(
                    stream,
                    version,
                    event,
                    created_at,
                    version == last,
                )?))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .build()
                .map_err(|e| StoreError::internal("building a put", e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }

        for attempt in 0..TRANSACTION_CONFLICT_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            let Some(codes) = cancellation_codes(&err) else {
                return Err(from_transaction(err));
            };
            // The reasons come in the order of the actions: the check (if any), then the puts.
            let puts_from = usize::from(check_previous);
            if check_previous && codes.first().map(String::as_str) == Some("ConditionalCheckFailed")
            {
                return Ok(Err(WriteConflict::PreviousMissing));
            }
            if codes
                .iter()
                .skip(puts_from)
                .any(|c| c == "ConditionalCheckFailed")
            {
                return Ok(Err(WriteConflict::VersionTaken));
            }
            // Throttled, or another transaction held an item: nothing was written, so the
            // same transaction is safe to send again after a pause.
            let busy =
                classify_cancellation(codes.iter().map(String::as_str)) == Cancellation::Busy;
            if busy && attempt + 1 < TRANSACTION_CONFLICT_ATTEMPTS {
                tokio::time::sleep(conflict_backoff(attempt)).await;
                continue;
            }
            return Err(from_transaction(err));
        }
        Err(StoreError::Unavailable {
            message: "TransactWriteItems kept being cancelled by throttling or contention".into(),
            source: None,
        })
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
        let mut events: Vec<RecordedEvent> = Vec::new();
        let mut bytes = 0usize;
        let mut start = None;
        loop {
            // One more than asked tells whether a further page exists.
            let want = limit + 1 - events.len();
            let page = self
                .query_versions(stream, range, backward, want, false, start)
                .await?;
            for item in page.items {
                let event = decode(item)?;
                let size = event.payload_bytes();
                if events.len() == limit || (bytes + size > max_bytes && !events.is_empty()) {
                    return Ok(LogPage { events, more: true });
                }
                bytes += size;
                events.push(event);
            }
            match page.last_key {
                Some(key) => start = Some(key),
                None => {
                    return Ok(LogPage {
                        events,
                        more: false,
                    })
                }
            }
        }
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

/// One whole item by its key, read consistently; `None` if it does not exist.
pub(crate) async fn get_consistent(
    client: &Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .consistent_read(true)
        .key(keys::PK, AttributeValue::S(pk.to_owned()))
        .key(keys::SK, AttributeValue::S(sk.to_owned()))
        .send()
        .await
        .map_err(|e| from_sdk("GetItem", e))?;
    Ok(out.item)
}

/// Reads `keys` from `table` consistently with BatchGetItem (at most 100 keys), following
/// unprocessed keys with backoff. Returns the items found, in no particular order.
pub(crate) async fn batch_get_consistent(
    client: &Client,
    table: &str,
    keys: Vec<HashMap<String, AttributeValue>>,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::new();
    if keys.is_empty() {
        return Ok(found);
    }
    let mut request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .build()
        .map_err(|e| StoreError::internal("building a BatchGetItem", e))?;
    for attempt in 0..10 {
        let out = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| from_sdk("BatchGetItem", e))?;
        found.extend(
            out.responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default(),
        );
        match out.unprocessed_keys.and_then(|mut u| u.remove(table)) {
            Some(rest) if !rest.keys().is_empty() => {
                tokio::time::sleep(conflict_backoff(attempt)).await;
                request = rest;
            }
            _ => return Ok(found),
        }
    }
    Err(StoreError::Unavailable {
        message: "BatchGetItem kept leaving keys unprocessed".into(),
        source: None,
    })
}

/// How a transaction whose conditions guard against other writers ended.
pub(crate) enum Sent {
    Committed,
    /// A condition failed, or another transaction touched the same items: what was read
    /// may be stale, so the caller re-reads rather than resending.
    Lost,
    /// Anything else, after resending throttled attempts ([`TRANSACTION_CONFLICT_ATTEMPTS`]
    /// in all): the caller inspects it or maps it with [`from_transaction`].
    Failed(Box<SdkError<TransactWriteItemsError, HttpResponse>>),
}

/// Sends a transaction whose conditions guard against other writers. A throttled attempt
/// wrote nothing and read nothing stale, so it is sent again after a pause.
pub(crate) async fn send_guarded(client: &Client, writes: Vec<TransactWriteItem>) -> Sent {
    let mut attempt = 0;
    loop {
        let err = match client
            .transact_write_items()
            .set_transact_items(Some(writes.clone()))
            .send()
            .await
        {
            Ok(_) => return Sent::Committed,
            Err(e) => e,
        };
        let Some(codes) = cancellation_codes(&err) else {
            return Sent::Failed(Box::new(err));
        };
        if codes
            .iter()
            .any(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict")
        {
            return Sent::Lost;
        }
        let busy = classify_cancellation(codes.iter().map(String::as_str)) == Cancellation::Busy;
        if !busy || attempt + 1 >= TRANSACTION_CONFLICT_ATTEMPTS {
            return Sent::Failed(Box::new(err));
        }
        tokio::time::sleep(conflict_backoff(attempt)).await;
        attempt += 1;
    }
}

/// [`send_guarded`] for callers that only need to know whether it committed: `Ok(false)`
/// when it lost to another writer; a failure (a persisting throttle is `Unavailable`) as
/// an error.
pub(crate) async fn transact_conditionally(
    client: &Client,
    writes: Vec<TransactWriteItem>,
) -> Result<bool, StoreError> {
    match send_guarded(client, writes).await {
        Sent::Committed => Ok(true),
        Sent::Lost => Ok(false),
        Sent::Failed(err) => Err(from_transaction(*err)),
    }
}

/// The value of a counter item, 0 when it does not exist yet.
pub(crate) fn counter_value(item: Option<&Item>) -> Result<u64, StoreError> {
    let Some(item) = item else { return Ok(0) };
    item.get(keys::COUNTER_LAST)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::corrupt("a counter item without a valid `last`"))
}

/// Which index, and which partition of it, a global-order read queries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IndexKey {
    /// A bucket of `GlobalOrder`.
    Bucket(u64),
    EventType(String),
    Category(String),
}

/// The range of positions a Query over an index asks for.
#[derive(Debug, Clone, Copy)]
enum PositionBound {
    AtLeast(u64),
    /// Newest first, below the position.
    Below(u64),
}

impl IndexKey {
    fn of(filter: &GlobalFilter, position: u64) -> Self {
        match filter {
            GlobalFilter::All => Self::Bucket(keys::global_bucket(position)),
            GlobalFilter::EventType(t) => Self::EventType(t.as_str().to_owned()),
            GlobalFilter::Category(c) => Self::Category(c.as_str().to_owned()),
        }
    }

    fn parts(&self) -> (&'static str, &'static str, AttributeValue) {
        match self {
            Self::Bucket(b) => (
                keys::GLOBAL_ORDER_INDEX,
                keys::GLOBAL_BUCKET,
                AttributeValue::N(b.to_string()),
            ),
            Self::EventType(t) => (
                keys::TYPE_ORDER_INDEX,
                keys::EVENT_TYPE,
                AttributeValue::S(t.clone()),
            ),
            Self::Category(c) => (
                keys::CATEGORY_ORDER_INDEX,
                keys::CATEGORY,
                AttributeValue::S(c.clone()),
            ),
        }
    }

    fn last_position_of_bucket(&self) -> Option<u64> {
        match self {
            Self::Bucket(b) => keys::last_position_of_bucket(*b),
            _ => None,
        }
    }

    fn next_bucket(&self) -> Self {
        match self {
            Self::Bucket(b) => Self::Bucket(b.saturating_add(1)),
            other => other.clone(),
        }
    }
}
