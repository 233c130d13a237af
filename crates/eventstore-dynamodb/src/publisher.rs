//! The publisher's checkpoint and parked events in the checkpoints table.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::Client;
use eventstore_core::publish::{ParkedEntry, PublisherStore};
use eventstore_core::StoreError;

use crate::error::from_sdk;
use crate::io::{get_consistent, key, n, number, partition_items, s, text};
use crate::keys;

/// [`PublisherStore`] over the checkpoints table.
#[derive(Debug, Clone)]
pub struct DynamoPublisherStore {
    client: Client,
    table: String,
}

impl DynamoPublisherStore {
    pub fn new(client: Client, checkpoints_table: impl Into<String>) -> Self {
        Self {
            client,
            table: checkpoints_table.into(),
        }
    }
}

impl PublisherStore for DynamoPublisherStore {
    async fn checkpoint(&self, publisher: &str) -> Result<u64, StoreError> {
        let item = get_consistent(
            &self.client,
            &self.table,
            &keys::publisher_pk(publisher),
            keys::CHECKPOINT_SK,
        )
        .await?;
        Ok(item
            .and_then(|item| number(&item, keys::POSITION))
            .unwrap_or(1))
    }

    async fn advance(
        &self,
        publisher: &str,
        from: u64,
        to: u64,
        parked: &[ParkedEntry],
    ) -> Result<bool, StoreError> {
        // Parked entries first, each keyed by its position: if the checkpoint write below
        // never happens, the next run parks the same events again over the same items.
        for p in parked {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(key(
                    keys::publisher_parked_pk(publisher),
                    keys::parked_sk(p.position),
                )))
                .item(keys::EVENT_ID, s(p.event_id.to_string()))
                .item(keys::STREAM_ID, s(&p.stream_id))
                .item(keys::EVENT_TYPE, s(&p.event_type))
                .item(keys::ERROR, s(&p.reason))
                .send()
                .await
                .map_err(|e| from_sdk("PutItem", e))?;
        }
        // Moves only from where this run started: a concurrent run (the stream trigger and
        // the schedule can overlap) that moved it first wins, and nothing moves back.
        let condition = if from == 1 {
            "attribute_not_exists(#pos) OR #pos = :from"
        } else {
            "#pos = :from"
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key(
                keys::publisher_pk(publisher),
                keys::CHECKPOINT_SK,
            )))
            .item(keys::POSITION, n(to))
            .condition_expression(condition)
            .expression_attribute_names("#pos", keys::POSITION)
            .expression_attribute_values(":from", n(from))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(from_sdk("PutItem", e)),
        }
    }

    async fn parked(&self, publisher: &str) -> Result<Vec<ParkedEntry>, StoreError> {
        let pk = keys::publisher_parked_pk(publisher);
        let items = partition_items(&self.client, &self.table, &pk).await?;
        Ok(items
            .iter()
            .map(|item| {
                let field = |k: &str| text(item, k).unwrap_or_default().to_owned();
                ParkedEntry {
                    position: text(item, keys::SK)
                        .and_then(|sk| sk.parse().ok())
                        .unwrap_or(0),
                    event_id: field(keys::EVENT_ID).parse().unwrap_or_default(),
                    stream_id: field(keys::STREAM_ID),
                    event_type: field(keys::EVENT_TYPE),
                    reason: field(keys::ERROR),
                }
            })
            .collect())
    }
}
