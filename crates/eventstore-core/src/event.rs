use std::collections::HashSet;
use std::fmt;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::limits::{MAX_APPEND_PAYLOAD_BYTES, MAX_EVENTS_PER_APPEND, MAX_EVENT_PAYLOAD_BYTES};
use crate::{EventType, StoreError, StreamId, ValidationError};

/// An event's `data`: any JSON value, kept as the exact JSON text the client sent.
///
/// The text is never parsed into numbers, so integers wider than 64 bits, long decimals,
/// deep nesting and empty objects come back exactly as they went in. Storage keeps it as one
/// string attribute for the same reason (DynamoDB numbers stop at 38 digits and its maps and
/// lists at 32 levels).
#[derive(Clone)]
pub struct EventData(Box<RawValue>);

impl EventData {
    /// Checks that `text` is one JSON value.
    pub fn from_json(text: String, field: &str) -> Result<Self, ValidationError> {
        RawValue::from_string(text)
            .map(Self)
            .map_err(|e| ValidationError::new(field, format!("is not valid JSON: {e}")))
    }

    pub fn from_raw(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }
}

impl fmt::Debug for EventData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

/// An event's `metadata`: a JSON object, kept as exact JSON text like [`EventData`].
#[derive(Clone, PartialEq)]
pub struct Metadata(EventData);

impl Metadata {
    pub fn empty() -> Self {
        // `{}` always parses; the fallback only avoids an `expect` in library code.
        Self(EventData(
            RawValue::from_string("{}".to_owned()).unwrap_or_default(),
        ))
    }

    /// Checks that `raw` is a JSON object.
    pub fn from_raw(raw: Box<RawValue>, field: &str) -> Result<Self, ValidationError> {
        if raw.get().trim_start().starts_with('{') {
            Ok(Self(EventData(raw)))
        } else {
            Err(ValidationError::new(field, "must be a JSON object"))
        }
    }

    pub fn from_json(text: String, field: &str) -> Result<Self, ValidationError> {
        let data = EventData::from_json(text, field)?;
        Self::from_raw(data.0, field)
    }

    pub fn as_json(&self) -> &str {
        self.0.as_json()
    }

    pub fn as_raw(&self) -> &RawValue {
        self.0.as_raw()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

/// A point in time, shown as RFC 3339 UTC with milliseconds (`2026-11-22T10:30:00.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(time::OffsetDateTime);

const TIMESTAMP_FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

impl Timestamp {
    pub fn now() -> Self {
        let now = time::OffsetDateTime::now_utc();
        // Truncate to what the text form keeps, so a stored and re-read value compares equal.
        let millis = now.millisecond();
        Self(now.replace_millisecond(millis).unwrap_or(now))
    }

    pub fn parse(text: &str) -> Option<Self> {
        time::PrimitiveDateTime::parse(text, TIMESTAMP_FORMAT)
            .ok()
            .map(|t| Self(t.assume_utc()))
    }

    /// Milliseconds from this instant to now; 0 if it is in the future.
    pub fn elapsed_millis(&self) -> u64 {
        let elapsed = time::OffsetDateTime::now_utc() - self.0;
        u64::try_from(elapsed.whole_milliseconds()).unwrap_or(0)
    }

    /// This instant minus `duration` (saturating at the earliest representable instant).
    pub fn minus(&self, duration: std::time::Duration) -> Self {
        Self(
            self.0
                .checked_sub(duration.try_into().unwrap_or(time::Duration::MAX))
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self
            .0
            .to_offset(time::UtcOffset::UTC)
            .format(TIMESTAMP_FORMAT)
            .map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

/// An event to append, already validated field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: EventType,
    pub schema_version: u32,
    pub data: EventData,
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event with a fresh UUIDv7 id, schema version 1 and empty metadata.
    pub fn new(event_type: EventType, data: EventData) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type,
            schema_version: 1,
            data,
            metadata: Metadata::empty(),
        }
    }

    /// Bytes this event counts against the payload limits.
    pub fn payload_bytes(&self) -> usize {
        self.data.as_json().len() + self.metadata.as_json().len()
    }
}

/// The events of one append, checked against every per-request rule: 1 to 100 events,
/// distinct ids, the per-event and per-request size caps.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    events: Vec<NewEvent>,
}

impl AppendBatch {
    pub fn new(events: Vec<NewEvent>) -> Result<Self, StoreError> {
        if events.is_empty() {
            return Err(ValidationError::new("events", "must hold at least one event").into());
        }
        if events.len() > MAX_EVENTS_PER_APPEND {
            return Err(ValidationError::new(
                "events",
                format!(
                    "holds {} events; at most {MAX_EVENTS_PER_APPEND} are allowed in one append",
                    events.len()
                ),
            )
            .into());
        }
        let mut seen = HashSet::with_capacity(events.len());
        let mut total = 0usize;
        for (i, event) in events.iter().enumerate() {
            if !seen.insert(event.event_id) {
                return Err(ValidationError::new(
                    format!("events[{i}].eventId"),
                    "repeats an event id of the same request",
                )
                .into());
            }
            let size = event.payload_bytes();
            if size > MAX_EVENT_PAYLOAD_BYTES {
                return Err(StoreError::PayloadTooLarge {
                    what: format!("events[{i}] (data + metadata)"),
                    actual: size,
                    limit: MAX_EVENT_PAYLOAD_BYTES,
                });
            }
            total += size;
        }
        if total > MAX_APPEND_PAYLOAD_BYTES {
            return Err(StoreError::PayloadTooLarge {
                what: "the request's events (data + metadata)".to_owned(),
                actual: total,
                limit: MAX_APPEND_PAYLOAD_BYTES,
            });
        }
        Ok(Self { events })
    }

    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn ids(&self) -> Vec<Uuid> {
        self.events.iter().map(|e| e.event_id).collect()
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream_id: StreamId,
    pub version: u64,
    pub event_type: EventType,
    pub schema_version: u32,
    pub data: EventData,
    pub metadata: Metadata,
    pub created_at: Timestamp,
    /// `None` until the store has assigned the event its place in the global order.
    pub global_position: Option<u64>,
}

impl RecordedEvent {
    pub fn payload_bytes(&self) -> usize {
        self.data.as_json().len() + self.metadata.as_json().len()
    }
}

/// The API's JSON form of an event (see the contract): camelCase, `data` and `metadata`
/// written out as the exact JSON text that was appended.
impl Serialize for RecordedEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Event", 9)?;
        s.serialize_field("eventId", &self.event_id)?;
        s.serialize_field("streamId", self.stream_id.as_str())?;
        s.serialize_field("version", &self.version)?;
        s.serialize_field("eventType", self.event_type.as_str())?;
        s.serialize_field("schemaVersion", &self.schema_version)?;
        s.serialize_field("data", self.data.as_raw())?;
        s.serialize_field("metadata", self.metadata.as_raw())?;
        s.serialize_field("createdAt", &self.created_at.to_string())?;
        s.serialize_field("globalPosition", &self.global_position)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> NewEvent {
        NewEvent::new(
            EventType::parse("T", "eventType").unwrap(),
            EventData::from_json(data.to_owned(), "data").unwrap(),
        )
    }

    #[test]
    fn data_keeps_the_exact_json_text_including_huge_integers() {
        let text = r#"{"n":123456789012345678901234567890,"f":0.1000000000000000055511151231257827,"e":{}}"#;
        let data = EventData::from_json(text.to_owned(), "data").unwrap();
        assert_eq!(data.as_json(), text);
    }

    #[test]
    fn data_that_is_not_json_names_the_field() {
        let err = EventData::from_json("{".to_owned(), "events[0].data").unwrap_err();
        assert_eq!(err.field, "events[0].data");
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert!(Metadata::from_json("{}".into(), "m").is_ok());
        assert!(Metadata::from_json(" {\"a\":1}".into(), "m").is_ok());
        for bad in ["[]", "1", "null", "\"{}\""] {
            assert!(Metadata::from_json(bad.into(), "m").is_err(), "{bad}");
        }
        assert_eq!(Metadata::empty().as_json(), "{}");
    }

    #[test]
    fn a_batch_holds_1_to_100_events() {
        assert!(matches!(
            AppendBatch::new(vec![]),
            Err(StoreError::Validation(e)) if e.field == "events"
        ));
        assert!(AppendBatch::new((0..100).map(|_| event("1")).collect()).is_ok());
        assert!(matches!(
            AppendBatch::new((0..101).map(|_| event("1")).collect()),
            Err(StoreError::Validation(e)) if e.field == "events"
        ));
    }

    #[test]
    fn a_batch_rejects_a_repeated_event_id() {
        let a = event("1");
        let mut b = event("2");
        b.event_id = a.event_id;
        assert!(matches!(
            AppendBatch::new(vec![a, b]),
            Err(StoreError::Validation(e)) if e.field == "events[1].eventId"
        ));
    }

    #[test]
    fn payload_caps_apply_per_event_and_per_request() {
        let at_cap = format!("\"{}\"", "x".repeat(MAX_EVENT_PAYLOAD_BYTES - 2 - 2));
        assert!(AppendBatch::new(vec![event(&at_cap)]).is_ok());
        let over = format!("\"{}\"", "x".repeat(MAX_EVENT_PAYLOAD_BYTES - 2 - 1));
        assert!(matches!(
            AppendBatch::new(vec![event(&over)]),
            Err(StoreError::PayloadTooLarge { actual, .. }) if actual == MAX_EVENT_PAYLOAD_BYTES + 1
        ));
        let big = format!("\"{}\"", "x".repeat(200 * 1024));
        let many = (0..16).map(|_| event(&big)).collect();
        assert!(matches!(
            AppendBatch::new(many),
            Err(StoreError::PayloadTooLarge { limit, .. }) if limit == MAX_APPEND_PAYLOAD_BYTES
        ));
    }

    #[test]
    fn timestamps_print_as_rfc3339_utc_millis_and_parse_back() {
        let t = Timestamp::now();
        let text = t.to_string();
        assert_eq!(text.len(), "2026-11-22T10:30:00.123Z".len());
        assert!(text.ends_with('Z'));
        assert_eq!(Timestamp::parse(&text), Some(t));
        assert_eq!(
            Timestamp::parse("2026-11-22T10:30:00.123Z")
                .unwrap()
                .to_string(),
            "2026-11-22T10:30:00.123Z"
        );
    }
}
