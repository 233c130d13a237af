//! Parsing of request bodies and query strings into domain types, with errors that name
//! the offending field the way the API spells it.

use eventstore_core::limits::{MAX_EVENTS_PER_APPEND, MAX_POSITION};
use eventstore_core::{
    AppendBatch, EventData, EventType, ExpectedVersion, Metadata, NewEvent, ValidationError,
};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::ApiError;

mod json;
mod query;
#[cfg(test)]
mod tests;

use json::{elements, invalid, json_text, members};
pub use query::Query;

/// A parsed `POST /streams/{streamId}/events` body.
#[derive(Debug)]
pub struct AppendBody {
    pub expected: ExpectedVersion,
    pub batch: AppendBatch,
}

pub fn parse_append(body: &[u8]) -> Result<AppendBody, ApiError> {
    let [expected, events] = members(json_text(body)?, ["expectedVersion", "events"], "body", "")?;
    let expected = match expected {
        None => ExpectedVersion::Any,
        Some(raw) => parse_expected(raw)?,
    };
    let events_raw = events.ok_or_else(|| invalid("events", "is required"))?;
    // The count is checked before the elements, so a long array is refused as too long.
    let items = match elements(events_raw.get(), MAX_EVENTS_PER_APPEND) {
        Err(_) => return Err(invalid("events", "must be an array of events").into()),
        Ok(Err(count)) => {
            return Err(invalid(
                "events",
                format!(
                "holds {count} events; at most {MAX_EVENTS_PER_APPEND} are allowed in one append"
            ),
            )
            .into())
        }
        Ok(Ok(items)) => items,
    };
    if items.is_empty() {
        return Err(invalid("events", "must hold at least one event").into());
    }
    let events = items
        .iter()
        .enumerate()
        .map(|(i, raw)| parse_event(raw, i))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = AppendBatch::new(events)?;
    Ok(AppendBody { expected, batch })
}

fn parse_expected(raw: &RawValue) -> Result<ExpectedVersion, ValidationError> {
    let field = "expectedVersion";
    let text = raw.get();
    if let Ok(keyword) = serde_json::from_str::<String>(text) {
        return match keyword.as_str() {
            "no_stream" => Ok(ExpectedVersion::NoStream),
            "stream_exists" => Ok(ExpectedVersion::StreamExists),
            "any" => Ok(ExpectedVersion::Any),
            _ => Err(invalid(
                field,
                "must be a version number, \"no_stream\", \"stream_exists\" or \"any\"",
            )),
        };
    }
    serde_json::from_str::<u64>(text)
        .ok()
        .filter(|v| *v <= MAX_POSITION)
        .map(ExpectedVersion::Exact)
        .ok_or_else(|| {
            invalid(
                field,
                format!(
                    "must be a whole number from 0 to {MAX_POSITION}, \"no_stream\", \"stream_exists\" or \"any\""
                ),
            )
        })
}

fn parse_event(raw: &RawValue, i: usize) -> Result<NewEvent, ValidationError> {
    let prefix = format!("events[{i}].");
    let field = |name: &str| format!("{prefix}{name}");
    let [event_id, event_type, data, metadata, schema_version] = members(
        raw.get(),
        ["eventId", "eventType", "data", "metadata", "schemaVersion"],
        &format!("events[{i}]"),
        &prefix,
    )?;

    let event_id = match event_id {
        None => Uuid::now_v7(),
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .ok()
            .and_then(|s| Uuid::parse_str(&s).ok())
            .ok_or_else(|| invalid(field("eventId"), "must be a UUID string"))?,
    };
    let event_type = match event_type {
        None => return Err(invalid(field("eventType"), "is required")),
        Some(raw) => {
            let text = serde_json::from_str::<String>(raw.get())
                .map_err(|_| invalid(field("eventType"), "must be a string"))?;
            EventType::parse(&text, &field("eventType"))?
        }
    };
    let data = match data {
        None => {
            return Err(invalid(
                field("data"),
                "is required (any JSON value, null included)",
            ))
        }
        Some(raw) => EventData::from_raw(raw.to_owned()),
    };
    let metadata = match metadata {
        None => Metadata::empty(),
        Some(raw) => Metadata::from_raw(raw.to_owned(), &field("metadata"))?,
    };
    let schema_version = match schema_version {
        None => 1,
        Some(raw) => serde_json::from_str::<u32>(raw.get())
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| {
                invalid(
                    field("schemaVersion"),
                    "must be a whole number from 1 to 4294967295",
                )
            })?,
    };
    Ok(NewEvent {
        event_id,
        event_type,
        schema_version,
        data,
        metadata,
    })
}

/// A parsed `PUT /streams/{streamId}/snapshot` body.
#[derive(Debug)]
pub struct SnapshotBody {
    pub version: u64,
    pub schema_version: u32,
    pub state: EventData,
}

pub fn parse_snapshot(body: &[u8]) -> Result<SnapshotBody, ApiError> {
    let [version, schema_version, state] = members(
        json_text(body)?,
        ["version", "schemaVersion", "state"],
        "body",
        "",
    )?;
    let version = match version {
        None => return Err(invalid("version", "is required").into()),
        Some(raw) => serde_json::from_str::<u64>(raw.get())
            .ok()
            .filter(|v| (1..=MAX_POSITION).contains(v))
            .ok_or_else(|| {
                invalid(
                    "version",
                    format!("must be a whole number from 1 to {MAX_POSITION}"),
                )
            })?,
    };
    let schema_version = match schema_version {
        None => return Err(invalid("schemaVersion", "is required").into()),
        Some(raw) => serde_json::from_str::<u32>(raw.get())
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| {
                invalid(
                    "schemaVersion",
                    "must be a whole number from 1 to 4294967295",
                )
            })?,
    };
    let state = match state {
        None => return Err(invalid("state", "is required (any JSON value)").into()),
        Some(raw) => EventData::from_raw(raw.to_owned()),
    };
    Ok(SnapshotBody {
        version,
        schema_version,
        state,
    })
}

/// A parsed `PUT /subscriptions/{name}` body.
#[derive(Debug)]
pub struct SubscriptionBody {
    pub position: u64,
    pub force: bool,
}

pub fn parse_subscription(body: &[u8]) -> Result<SubscriptionBody, ApiError> {
    let [position, force] = members(json_text(body)?, ["position", "force"], "body", "")?;
    let position = match position {
        None => return Err(invalid("position", "is required").into()),
        Some(raw) => serde_json::from_str::<u64>(raw.get())
            .ok()
            .filter(|v| *v <= MAX_POSITION)
            .ok_or_else(|| {
                invalid(
                    "position",
                    format!("must be a whole number from 0 to {MAX_POSITION}"),
                )
            })?,
    };
    let force = match force {
        None => false,
        Some(raw) => serde_json::from_str::<bool>(raw.get())
            .map_err(|_| invalid("force", "must be true or false"))?,
    };
    Ok(SubscriptionBody { position, force })
}
