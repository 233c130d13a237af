//! Repair: finds events without a position with a full Scan: what is left when the stream
//! path lost a batch and its records expired from the stream before the sweep could replay
//! them (`UnreplayableBatches`), or the mapping stayed off for over 24 hours.

use std::collections::HashMap;

use eventstore_core::{StoreError, StreamId};

use super::{Sequencer, StreamHint};
use crate::error::from_sdk;
use crate::io::{s, text};
use crate::keys;

impl Sequencer {
    /// Finds every event without a position, with a Scan of the whole table (it reads every
    /// item once: about table size / 8 KB read units, eventually consistent). Returns one
    /// hint per stream, oldest unsequenced event first, and reports progress as
    /// (items scanned, events found).
    pub async fn find_unsequenced(
        &self,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Vec<StreamHint>, StoreError> {
        // stream -> (newest unsequenced version, oldest unsequenced createdAt)
        let mut found: HashMap<String, (u64, String)> = HashMap::new();
        let (mut scanned, mut events) = (0u64, 0u64);
        let mut pages = self
            .log
            .client
            .scan()
            .table_name(&self.log.table)
            .filter_expression("begins_with(#sk, :events) AND attribute_not_exists(#pos)")
            .projection_expression("#pk, #sk, #created")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_names("#pos", keys::GLOBAL_POSITION)
            .expression_attribute_names("#created", keys::CREATED_AT)
            .expression_attribute_values(":events", s(keys::event_sk_prefix()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk("Scan", e))?;
            scanned += u64::try_from(page.scanned_count).unwrap_or(0);
            for item in page.items.unwrap_or_default() {
                let (Some(stream), Some(version)) = (
                    text(&item, keys::PK).and_then(keys::stream_of_pk),
                    text(&item, keys::SK).and_then(keys::parse_version_sk),
                ) else {
                    continue;
                };
                let created = text(&item, keys::CREATED_AT).unwrap_or_default().to_owned();
                events += 1;
                let entry = found
                    .entry(stream.to_owned())
                    .or_insert((version, created.clone()));
                entry.0 = entry.0.max(version);
                if created < entry.1 {
                    entry.1 = created;
                }
            }
            progress(scanned, events);
        }
        let mut streams: Vec<(String, (u64, String))> = found.into_iter().collect();
        // Oldest first, so that repaired positions follow append time as far as they can.
        streams.sort_by(|a, b| (&a.1 .1, &a.0).cmp(&(&b.1 .1, &b.0)));
        Ok(streams
            .into_iter()
            .filter_map(|(stream, (version, _))| {
                Some(StreamHint {
                    stream: StreamId::stored(&stream, "streamId").ok()?,
                    version,
                })
            })
            .collect())
    }

    /// The table's approximate item count (DynamoDB refreshes it about every six hours).
    pub async fn approximate_item_count(&self) -> Result<u64, StoreError> {
        let out = self
            .log
            .client
            .describe_table()
            .table_name(&self.log.table)
            .send()
            .await
            .map_err(|e| from_sdk("DescribeTable", e))?;
        Ok(out
            .table
            .and_then(|t| t.item_count)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0))
    }
}
