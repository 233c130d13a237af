//! The events table's definition. `infra/template.yaml` declares the same table; the test
//! `table_definition_matches_the_sam_template` keeps the two equal.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use eventstore_core::StoreError;
use serde::Serialize;

use crate::error::from_sdk;
use crate::keys;

/// The table's shape as plain data, for comparison with the SAM template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableShape {
    /// (name, type) of every key attribute.
    pub attributes: Vec<(String, String)>,
    /// (name, HASH|RANGE) of the table key.
    pub key: Vec<(String, String)>,
    pub indexes: Vec<IndexShape>,
    pub billing_mode: String,
    pub stream_view_type: String,
}

/// A global secondary index as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexShape {
    pub name: String,
    /// (name, HASH|RANGE) of the index key.
    pub key: Vec<(String, String)>,
    pub projection: String,
}

fn attributes() -> Vec<AttributeDefinition> {
    let def = |name: &str, ty: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ty)
            .build()
    };
    [
        def(keys::PK, ScalarAttributeType::S),
        def(keys::SK, ScalarAttributeType::S),
        def(keys::GLOBAL_BUCKET, ScalarAttributeType::N),
        def(keys::GLOBAL_POSITION, ScalarAttributeType::N),
    ]
    .into_iter()
    .collect::<Result<_, _>>()
    .unwrap_or_default()
}

fn key(hash: &str, range: &str) -> Vec<KeySchemaElement> {
    [(hash, KeyType::Hash), (range, KeyType::Range)]
        .into_iter()
        .filter_map(|(name, ty)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(ty)
                .build()
                .ok()
        })
        .collect()
}

fn global_order_index() -> Option<GlobalSecondaryIndex> {
    // ALL: a global read is then one Query per page, with no follow-up GetItem per event.
    GlobalSecondaryIndex::builder()
        .index_name(keys::GLOBAL_ORDER_INDEX)
        .set_key_schema(Some(key(keys::GLOBAL_BUCKET, keys::GLOBAL_POSITION)))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .ok()
}

/// The shape [`create_events_table`] creates.
pub fn events_table_shape() -> TableShape {
    let pairs = |k: &[KeySchemaElement]| {
        k.iter()
            .map(|e| {
                (
                    e.attribute_name().to_owned(),
                    e.key_type().as_str().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    TableShape {
        attributes: attributes()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        key: pairs(&key(keys::PK, keys::SK)),
        indexes: global_order_index()
            .into_iter()
            .map(|i| IndexShape {
                name: i.index_name().to_owned(),
                key: pairs(i.key_schema()),
                projection: i
                    .projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
            })
            .collect(),
        billing_mode: BillingMode::PayPerRequest.as_str().to_owned(),
        stream_view_type: StreamViewType::NewImage.as_str().to_owned(),
    }
}

/// Creates the events table for local use if it does not exist, and waits until it is active.
/// Deployed stacks get the table from `infra/template.yaml` instead.
pub async fn create_events_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let created = client
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(attributes()))
        .set_key_schema(Some(key(keys::PK, keys::SK)))
        .set_global_secondary_indexes(global_order_index().map(|i| vec![i]))
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(|e| StoreError::internal("building the stream specification", e))?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => {}
        Err(e) => return Err(from_sdk("CreateTable", e)),
    }
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| from_sdk("DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(StoreError::corrupt(format!(
        "table {table} did not become active within 60 s"
    )))
}
