//! The event item: how a [`RecordedEvent`] is laid out as DynamoDB attributes.

use eventstore_core::{
    EventData, EventType, Metadata, NewEvent, RecordedEvent, StateEvent, StoreError, StreamId,
    Timestamp,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys;

/// One event, one item. `data` and `metadata` are strings holding the exact JSON text that
/// was appended: DynamoDB's own number type keeps 38 digits and its maps nest 32 levels,
/// so storing JSON natively could not give every JSON value back unchanged.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EventItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    #[serde(rename = "eventId")]
    pub event_id: String,
    #[serde(rename = "streamId")]
    pub stream_id: String,
    pub version: u64,
    pub category: String,
    #[serde(rename = "eventType")]
    pub event_type: String,
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    pub data: String,
    pub metadata: String,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(
        rename = "globalPosition",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub global_position: Option<u64>,
}

pub(crate) use crate::io::Item;

/// The item of a new event.
pub(crate) fn new_item(
    stream: &StreamId,
    version: u64,
    event: &NewEvent,
    created_at: Timestamp,
) -> Result<Item, StoreError> {
    let item = EventItem {
        pk: keys::stream_pk(stream.as_str()),
        sk: keys::version_sk(version),
        event_id: event.event_id.to_string(),
        stream_id: stream.as_str().to_owned(),
        version,
        category: stream.category().as_str().to_owned(),
        event_type: event.event_type.as_str().to_owned(),
        schema_version: event.schema_version,
        data: event.data.as_json().to_owned(),
        metadata: event.metadata.as_json().to_owned(),
        created_at: created_at.to_string(),
        global_position: None,
    };
    serde_dynamo::to_item(item).map_err(|e| StoreError::internal("encoding an event item", e))
}

/// What a load reads of an event item: [`STATE_ATTRIBUTES`], what [`StateEvent`] needs.
#[derive(Debug, Deserialize)]
struct StateItem {
    #[serde(rename = "SK")]
    sk: String,
    version: u64,
    #[serde(rename = "eventType")]
    event_type: String,
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    data: String,
}

/// The attributes of an event item that folding state needs. A load projects them: the
/// read units are the same (DynamoDB charges for whole items), the bytes sent and decoded
/// are not.
pub(crate) const STATE_ATTRIBUTES: [&str; 5] = [
    keys::SK,
    keys::VERSION,
    keys::EVENT_TYPE,
    keys::SCHEMA_VERSION,
    keys::DATA,
];

/// An event item read with [`STATE_ATTRIBUTES`] (or all of them).
pub(crate) fn decode_state(item: Item) -> Result<StateEvent, StoreError> {
    let item: StateItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::internal("decoding an event item", e))?;
    let bad = |what: &str| StoreError::corrupt(format!("stored event {}: bad {what}", item.sk));
    Ok(StateEvent {
        version: item.version,
        event_type: EventType::parse(&item.event_type, "eventType")
            .map_err(|_| bad("eventType"))?,
        schema_version: item.schema_version,
        data: EventData::from_json(item.data, "data").map_err(|_| bad("data"))?,
    })
}

pub(crate) fn decode(item: Item) -> Result<RecordedEvent, StoreError> {
    decode_item(parse(item)?)
}

pub(crate) fn parse(item: Item) -> Result<EventItem, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::internal("decoding an event item", e))
}

pub(crate) fn decode_item(item: EventItem) -> Result<RecordedEvent, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored event {}: bad {what}", item.sk));
    Ok(RecordedEvent {
        event_id: Uuid::parse_str(&item.event_id).map_err(|_| bad("eventId"))?,
        stream_id: StreamId::stored(&item.stream_id, "streamId").map_err(|_| bad("streamId"))?,
        version: item.version,
        event_type: EventType::parse(&item.event_type, "eventType")
            .map_err(|_| bad("eventType"))?,
        schema_version: item.schema_version,
        data: EventData::from_json(item.data, "data").map_err(|_| bad("data"))?,
        metadata: Metadata::from_json(item.metadata, "metadata").map_err(|_| bad("metadata"))?,
        created_at: Timestamp::parse(&item.created_at).ok_or_else(|| bad("createdAt"))?,
        global_position: item.global_position,
    })
}

/// The version and event id of an item read with a projection of just those attributes.
pub(crate) fn version_and_id(item: &Item) -> Result<(u64, Uuid), StoreError> {
    let version = item
        .get(keys::SK)
        .and_then(|v| v.as_s().ok())
        .and_then(|sk| keys::parse_version_sk(sk))
        .ok_or_else(|| StoreError::corrupt("event item without a valid SK"))?;
    let id = item
        .get(keys::EVENT_ID)
        .and_then(|v| v.as_s().ok())
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| StoreError::corrupt("event item without a valid eventId"))?;
    Ok((version, id))
}
