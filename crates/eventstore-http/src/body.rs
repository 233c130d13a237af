//! Response bodies. Typed structs rather than `serde_json::Value`: events carry their
//! `data` as raw JSON text, and going through `Value` would round big numbers to floats.

use eventstore_core::RecordedEvent;
use serde::Serialize;
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
