//! Response bodies. Typed structs rather than `serde_json::Value`: events carry their
//! `data` as raw JSON text, and going through `Value` would round big numbers to floats.

use eventstore_core::{RecordedEvent, Snapshot};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Appended<'a> {
    pub stream_id: &'a str,
    pub from_version: u64,
    pub to_version: u64,
    pub event_ids: &'a [Uuid],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamEvents<'a> {
    pub stream_id: &'a str,
    pub events: &'a [RecordedEvent],
    pub next: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamInfo<'a> {
    pub stream_id: &'a str,
    pub category: &'a str,
    pub version: u64,
}

#[derive(Serialize)]
pub(crate) struct GlobalEvents<'a> {
    pub events: &'a [RecordedEvent],
    pub next: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SnapshotBody<'a> {
    pub stream_id: &'a str,
    pub version: u64,
    pub schema_version: u32,
    pub state: &'a RawValue,
    pub created_at: String,
}

impl<'a> SnapshotBody<'a> {
    pub fn new(stream_id: &'a str, snapshot: &'a Snapshot) -> Self {
        Self {
            stream_id,
            version: snapshot.version,
            schema_version: snapshot.schema_version,
            state: snapshot.state.as_raw(),
            created_at: snapshot.created_at.to_string(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectionStatus<'a> {
    pub name: &'a str,
    pub checkpoint: u64,
    pub head: u64,
    pub lag: u64,
    pub parked: u64,
    pub generation: u64,
}

#[derive(Serialize)]
pub(crate) struct RowItem<'a> {
    pub item: &'a str,
    pub value: &'a serde_json::Value,
}

#[derive(Serialize)]
pub(crate) struct ProjectionRow<'a> {
    pub projection: &'a str,
    pub key: &'a str,
    /// The row, for projections with one row per key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<&'a serde_json::Value>,
    /// The rows under the key, for projections with several (a page of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<RowItem<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Option<&'a str>>,
}

#[derive(Serialize)]
pub(crate) struct Subscription<'a> {
    pub name: &'a str,
    pub position: u64,
}
