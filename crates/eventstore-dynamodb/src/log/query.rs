//! Queries of the events table: a stream's versions, the global-order indexes page by
//! page, and the index cursors that walk `GlobalOrder`'s buckets.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use eventstore_core::{StoreError, StreamId};
use uuid::Uuid;

use super::DynamoEventLog;
use crate::error::from_sdk;
use crate::item::{self, version_and_id, Item};
use crate::keys;

/// Which attributes of event items a version-range Query returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attributes {
    All,
    /// `SK` and `eventId`.
    Ids,
    /// What folding state needs ([`item::STATE_ATTRIBUTES`]).
    State,
}

/// One page of a Query, its items and where the next page starts.
pub(crate) struct QueryPage {
    pub(crate) items: Vec<Item>,
    pub(crate) last_key: Option<HashMap<String, AttributeValue>>,
}

impl DynamoEventLog {
    /// A consistent Query of a stream's partition between sort keys `low` and `high`: the
    /// event reads below and the snapshot load (`snapshots.rs`) add their own limits.
    pub(crate) fn stream_query(
        &self,
        stream: &StreamId,
        low: String,
        high: String,
        backward: bool,
    ) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", AttributeValue::S(keys::stream_pk(stream.as_str())))
            .expression_attribute_values(":low", AttributeValue::S(low))
            .expression_attribute_values(":high", AttributeValue::S(high))
            .scan_index_forward(!backward)
    }

    /// One page of a consistent Query over a stream's versions `low..=high`, of the event
    /// items' `attributes`.
    pub(crate) async fn query_versions(
        &self,
        stream: &StreamId,
        (low, high): (u64, u64),
        backward: bool,
        limit: usize,
        attributes: Attributes,
        start: Option<HashMap<String, AttributeValue>>,
    ) -> Result<QueryPage, StoreError> {
        let mut query = self
            .stream_query(
                stream,
                keys::version_sk(low),
                keys::version_sk(high),
                backward,
            )
            // The previous release copied snapshots to `VERSION#<v>#SNAPSHOT`, between
            // versions; events alone carry an id. `Limit` counts before the filter, so a
            // page may come up short: every caller follows `last_key`.
            .filter_expression("attribute_exists(#eid)")
            .expression_attribute_names("#eid", keys::EVENT_ID)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        match attributes {
            Attributes::All => {}
            Attributes::Ids => {
                query = query
                    .select(Select::SpecificAttributes)
                    .projection_expression("#sk, #eid");
            }
            Attributes::State => query = project(query, &item::STATE_ATTRIBUTES),
        }
        let out = query.send().await.map_err(|e| from_sdk("Query", e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    /// One page of a Query over bucket `bucket` of `GlobalOrder`, from position `from`
    /// (eventually consistent: GSIs offer nothing else).
    pub(super) async fn query_bucket(
        &self,
        bucket: u64,
        from: u64,
        limit: usize,
    ) -> Result<QueryPage, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GLOBAL_ORDER_INDEX)
            .key_condition_expression("#k = :k AND #p >= :p")
            .expression_attribute_names("#k", keys::GLOBAL_BUCKET)
            .expression_attribute_names("#p", keys::GLOBAL_POSITION)
            .expression_attribute_values(":k", AttributeValue::N(bucket.to_string()))
            .expression_attribute_values(":p", AttributeValue::N(from.to_string()))
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        Ok(QueryPage {
            items: out.items.unwrap_or_default(),
            last_key: out.last_evaluated_key.filter(|k| !k.is_empty()),
        })
    }

    /// Up to `limit` events in `range` (`limit` and `max_bytes` of payload, at least one
    /// event), decoded by `decode`, following pages; and whether more follow.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn read_versions<T>(
        &self,
        stream: &StreamId,
        range: (u64, u64),
        backward: bool,
        (limit, max_bytes): (usize, usize),
        attributes: Attributes,
        decode: fn(Item) -> Result<T, StoreError>,
        size: fn(&T) -> usize,
    ) -> Result<(Vec<T>, bool), StoreError> {
        let mut events: Vec<T> = Vec::new();
        let mut bytes = 0usize;
        let mut start = None;
        loop {
            // One more than asked tells whether a further page exists.
            let want = limit + 1 - events.len();
            let page = self
                .query_versions(stream, range, backward, want, attributes, start)
                .await?;
            for item in page.items {
                let event = decode(item)?;
                let event_bytes = size(&event);
                if events.len() == limit || (bytes + event_bytes > max_bytes && !events.is_empty())
                {
                    return Ok((events, true));
                }
                bytes += event_bytes;
                events.push(event);
            }
            match page.last_key {
                Some(key) => start = Some(key),
                None => return Ok((events, false)),
            }
        }
    }

    /// Version and id of up to `count` events in `range`, following every page.
    pub(super) async fn ids_in(
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
                .query_versions(
                    stream,
                    range,
                    backward,
                    count - found.len(),
                    Attributes::Ids,
                    start,
                )
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
}

/// `query` returning only `attributes` (each through a placeholder: `data` is a reserved
/// word). Placeholders `#p0`, `#p1`, ... leave the query's own names alone.
pub(crate) fn project(query: QueryFluentBuilder, attributes: &[&str]) -> QueryFluentBuilder {
    let names: Vec<String> = (0..attributes.len()).map(|i| format!("#p{i}")).collect();
    let mut query = query
        .select(Select::SpecificAttributes)
        .projection_expression(names.join(", "));
    for (name, attribute) in names.iter().zip(attributes) {
        query = query.expression_attribute_names(name, *attribute);
    }
    query
}
