//! The events table's definition. `infra/template.yaml` declares the same table; the test
//! `table_definition_matches_the_sam_template` keeps the two equal.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use eventstore_core::StoreError;
use serde::Serialize;

use crate::error::from_sdk;
use crate::keys;

/// The table's shape as plain data: the single definition that [`create_events_table`]
/// turns into a CreateTable request and the template test compares with the SAM template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableShape {
    /// (name, S|N) of every key attribute.
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

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The events table: see [`keys`] for what the attributes hold.
pub fn events_table_shape() -> TableShape {
    TableShape {
        attributes: pairs(&[
            (keys::PK, "S"),
            (keys::SK, "S"),
            (keys::GLOBAL_BUCKET, "N"),
            (keys::GLOBAL_POSITION, "N"),
        ]),
        key: pairs(&[(keys::PK, "HASH"), (keys::SK, "RANGE")]),
        // One index serves every global-order read: `$all` and, passing over the other
        // events, each type and category (an index per type or category would put every
        // event of a busy one on a single partition key). Projection ALL: a page is one
        // Query, with no GetItem per event; a 1 KB event's entry costs 1 WCU either way.
        indexes: [(keys::GLOBAL_ORDER_INDEX, keys::GLOBAL_BUCKET)]
            .into_iter()
            .map(|(name, partition)| IndexShape {
                name: name.to_owned(),
                key: pairs(&[(partition, "HASH"), (keys::GLOBAL_POSITION, "RANGE")]),
                projection: "ALL".to_owned(),
            })
            .collect(),
        billing_mode: "PAY_PER_REQUEST".to_owned(),
        // The sequencer and projections read new images from the table's stream.
        stream_view_type: "NEW_IMAGE".to_owned(),
    }
}

fn key_schema(key: &[(String, String)]) -> Result<Vec<KeySchemaElement>, BuildError> {
    key.iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()
        })
        .collect()
}

fn build_error(e: BuildError) -> StoreError {
    StoreError::internal("building the CreateTable request", e)
}

/// Creates the events table for local use if it does not exist, and waits until it is active.
/// Deployed stacks get the table from `infra/template.yaml` instead.
pub async fn create_events_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let shape = events_table_shape();
    let attributes = shape
        .attributes
        .iter()
        .map(|(name, kind)| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    let indexes = shape
        .indexes
        .iter()
        .map(|index| {
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.key)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.as_str()))
                        .build(),
                )
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::from(shape.stream_view_type.as_str()))
        .build()
        .map_err(build_error)?;
    let created = client
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(&shape.key).map_err(build_error)?))
        .set_global_secondary_indexes(Some(indexes))
        .billing_mode(BillingMode::from(shape.billing_mode.as_str()))
        .stream_specification(stream)
        .send()
        .await;
    created_or_exists(client, table, created).await
}

/// A table that already exists is fine (local set-up is re-run at every start); then wait
/// until it is active.
async fn created_or_exists<T>(
    client: &Client,
    table: &str,
    created: Result<T, SdkError<CreateTableError, HttpResponse>>,
) -> Result<(), StoreError> {
    match created {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => {}
        Err(e) => return Err(from_sdk("CreateTable", e)),
    }
    wait_active(client, table).await
}

async fn wait_active(client: &Client, table: &str) -> Result<(), StoreError> {
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

/// The key schema of the projection rows and checkpoints tables: `PK` and `SK`, both strings,
/// on-demand, no stream. `infra/template.yaml` declares the same (a test compares them).
pub fn key_value_table_key() -> Vec<(String, String)> {
    pairs(&[(keys::PK, "HASH"), (keys::SK, "RANGE")])
}

/// Creates a `PK`/`SK` table for local use if it does not exist, and waits until it is
/// active. Deployed stacks get it from `infra/template.yaml`.
pub async fn create_key_value_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attributes = [keys::PK, keys::SK]
        .iter()
        .map(|name| {
            AttributeDefinition::builder()
                .attribute_name(*name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    let created = client
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(
            key_schema(&key_value_table_key()).map_err(build_error)?,
        ))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    created_or_exists(client, table, created).await
}
