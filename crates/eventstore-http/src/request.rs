//! Parsing of request bodies and query strings into domain types, with errors that name
//! the offending field the way the API spells it.

use std::collections::BTreeMap;

use eventstore_core::limits::{
    DEFAULT_READ_LIMIT, MAX_EVENTS_PER_APPEND, MAX_POSITION, MAX_READ_LIMIT,
};
use eventstore_core::{
    AppendBatch, Direction, EventData, EventType, ExpectedVersion, Metadata, NewEvent, StreamRead,
    ValidationError,
};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::ApiError;

type Object = BTreeMap<String, Box<RawValue>>;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

fn object(raw: &RawValue, field: &str) -> Result<Object, ValidationError> {
    serde_json::from_str(raw.get()).map_err(|_| invalid(field, "must be a JSON object"))
}

fn reject_unknown(obj: &Object, allowed: &[&str], prefix: &str) -> Result<(), ValidationError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(
            format!("{prefix}{unknown}"),
            format!(
                "is not a known field (expected one of: {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// A parsed `POST /streams/{streamId}/events` body.
#[derive(Debug)]
pub struct AppendBody {
    pub expected: ExpectedVersion,
    pub batch: AppendBatch,
}

pub fn parse_append(body: &[u8]) -> Result<AppendBody, ApiError> {
    let root: Box<RawValue> = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("is not valid JSON: {e}")))?;
    let root = object(&root, "body")?;
    reject_unknown(&root, &["expectedVersion", "events"], "")?;

    let expected = match root.get("expectedVersion") {
        None => ExpectedVersion::Any,
        Some(raw) => parse_expected(raw)?,
    };
    let events_raw = root
        .get("events")
        .ok_or_else(|| invalid("events", "is required"))?;
    let items: Vec<Box<RawValue>> = serde_json::from_str(events_raw.get())
        .map_err(|_| invalid("events", "must be an array of events"))?;
    // The count is checked before the elements, so a long array is refused as too long.
    if items.is_empty() {
        return Err(invalid("events", "must hold at least one event").into());
    }
    if items.len() > MAX_EVENTS_PER_APPEND {
        return Err(invalid(
            "events",
            format!(
                "holds {} events; at most {MAX_EVENTS_PER_APPEND} are allowed in one append",
                items.len()
            ),
        )
        .into());
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
    let obj = object(raw, &format!("events[{i}]"))?;
    reject_unknown(
        &obj,
        &["eventId", "eventType", "data", "metadata", "schemaVersion"],
        &prefix,
    )?;

    let event_id = match obj.get("eventId") {
        None => Uuid::now_v7(),
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .ok()
            .and_then(|s| Uuid::parse_str(&s).ok())
            .ok_or_else(|| invalid(field("eventId"), "must be a UUID string"))?,
    };
    let event_type = match obj.get("eventType") {
        None => return Err(invalid(field("eventType"), "is required")),
        Some(raw) => {
            let text = serde_json::from_str::<String>(raw.get())
                .map_err(|_| invalid(field("eventType"), "must be a string"))?;
            EventType::parse(&text, &field("eventType"))?
        }
    };
    let data = match obj.get("data") {
        None => {
            return Err(invalid(
                field("data"),
                "is required (any JSON value, null included)",
            ))
        }
        Some(raw) => EventData::from_raw(raw.clone()),
    };
    let metadata = match obj.get("metadata") {
        None => Metadata::empty(),
        Some(raw) => Metadata::from_raw(raw.clone(), &field("metadata"))?,
    };
    let schema_version = match obj.get("schemaVersion") {
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
    let root: Box<RawValue> = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("is not valid JSON: {e}")))?;
    let root = object(&root, "body")?;
    reject_unknown(&root, &["version", "schemaVersion", "state"], "")?;
    let version = match root.get("version") {
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
    let schema_version = match root.get("schemaVersion") {
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
    let state = match root.get("state") {
        None => return Err(invalid("state", "is required (any JSON value)").into()),
        Some(raw) => EventData::from_raw(raw.clone()),
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
    let root: Box<RawValue> = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("is not valid JSON: {e}")))?;
    let root = object(&root, "body")?;
    reject_unknown(&root, &["position", "force"], "")?;
    let position = match root.get("position") {
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
    let force = match root.get("force") {
        None => false,
        Some(raw) => serde_json::from_str::<bool>(raw.get())
            .map_err(|_| invalid("force", "must be true or false"))?,
    };
    Ok(SubscriptionBody { position, force })
}

/// Query parameters, each at most once.
pub struct Query(BTreeMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Self, ValidationError> {
        let mut map = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(invalid(key.to_string(), "must be given at most once"));
            }
        }
        Ok(Self(map))
    }

    fn number(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ValidationError> {
        let Some(text) = self.0.get(name) else {
            return Ok(None);
        };
        text.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| invalid(name, format!("must be a whole number from {min} to {max}")))
    }

    pub fn from(&self) -> Result<Option<u64>, ValidationError> {
        self.number("from", 1, MAX_POSITION)
    }

    pub fn limit(&self) -> Result<usize, ValidationError> {
        let limit = self.number("limit", 1, MAX_READ_LIMIT as u64)?;
        Ok(limit.map_or(DEFAULT_READ_LIMIT, |l| l as usize))
    }

    /// `after`: the item to continue after, for projection rows.
    pub fn after(&self) -> Option<&str> {
        self.0.get("after").map(String::as_str)
    }

    /// `upcast=true` asks for events brought up to their newest schema; default false.
    pub fn upcast(&self) -> Result<bool, ValidationError> {
        match self.0.get("upcast").map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(invalid("upcast", "must be \"true\" or \"false\"")),
        }
    }

    pub fn stream_read(&self) -> Result<StreamRead, ValidationError> {
        let direction = match self.0.get("direction").map(String::as_str) {
            None | Some("forward") => Direction::Forward,
            Some("backward") => Direction::Backward,
            Some(_) => return Err(invalid("direction", "must be \"forward\" or \"backward\"")),
        };
        Ok(StreamRead {
            from: self.from()?,
            direction,
            limit: self.limit()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventstore_core::StoreError;

    fn field_of(body: &str) -> String {
        match parse_append(body.as_bytes()) {
            Err(ApiError::Store(StoreError::Validation(v))) => v.field,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_full_append_body_parses() {
        let body = r#"{"expectedVersion": 2, "events": [{"eventId": "0190c1f4-0000-7000-8000-000000000001",
            "eventType": "MoneyDeposited", "data": {"amount": 500}, "metadata": {"c": 1}, "schemaVersion": 2}]}"#;
        let parsed = parse_append(body.as_bytes()).unwrap();
        assert_eq!(parsed.expected, ExpectedVersion::Exact(2));
        let e = &parsed.batch.events()[0];
        assert_eq!(
            e.event_id.to_string(),
            "0190c1f4-0000-7000-8000-000000000001"
        );
        assert_eq!(e.data.as_json(), r#"{"amount": 500}"#);
        assert_eq!(e.metadata.as_json(), r#"{"c": 1}"#);
        assert_eq!(e.schema_version, 2);
    }

    #[test]
    fn defaults_are_any_empty_metadata_schema_1_and_a_v7_id() {
        let parsed = parse_append(br#"{"events":[{"eventType":"A","data":null}]}"#).unwrap();
        assert_eq!(parsed.expected, ExpectedVersion::Any);
        let e = &parsed.batch.events()[0];
        assert_eq!(e.metadata.as_json(), "{}");
        assert_eq!(e.schema_version, 1);
        assert_eq!(e.event_id.get_version_num(), 7);
    }

    #[test]
    fn expected_version_keywords_and_numbers() {
        for (text, want) in [
            ("0", ExpectedVersion::Exact(0)),
            ("\"no_stream\"", ExpectedVersion::NoStream),
            ("\"stream_exists\"", ExpectedVersion::StreamExists),
            ("\"any\"", ExpectedVersion::Any),
        ] {
            let body =
                format!(r#"{{"expectedVersion":{text},"events":[{{"eventType":"A","data":1}}]}}"#);
            assert_eq!(parse_append(body.as_bytes()).unwrap().expected, want);
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let ev = r#"{"eventType":"A","data":1}"#;
        let cases = [
            ("not json", "body".to_owned()),
            ("[]", "body".to_owned()),
            (r#"{"events":[]}"#, "events".to_owned()),
            (r#"{}"#, "events".to_owned()),
            (r#"{"events":{}}"#, "events".to_owned()),
            (
                &format!(r#"{{"expectedVersion":-1,"events":[{ev}]}}"#),
                "expectedVersion".to_owned(),
            ),
            (
                &format!(r#"{{"expectedVersion":1.5,"events":[{ev}]}}"#),
                "expectedVersion".to_owned(),
            ),
            (
                &format!(r#"{{"expectedVersion":"latest","events":[{ev}]}}"#),
                "expectedVersion".to_owned(),
            ),
            (
                &format!(r#"{{"expectedVersion":null,"events":[{ev}]}}"#),
                "expectedVersion".to_owned(),
            ),
            (
                &format!(r#"{{"extra":1,"events":[{ev}]}}"#),
                "extra".to_owned(),
            ),
            (r#"{"events":[1]}"#, "events[0]".to_owned()),
            (
                r#"{"events":[{"data":1}]}"#,
                "events[0].eventType".to_owned(),
            ),
            (
                r#"{"events":[{"eventType":"bad type","data":1}]}"#,
                "events[0].eventType".to_owned(),
            ),
            (
                r#"{"events":[{"eventType":7,"data":1}]}"#,
                "events[0].eventType".to_owned(),
            ),
            (
                r#"{"events":[{"eventType":"A"}]}"#,
                "events[0].data".to_owned(),
            ),
            (
                r#"{"events":[{"eventType":"A","data":1,"metadata":[]}]}"#,
                "events[0].metadata".to_owned(),
            ),
            (
                r#"{"events":[{"eventType":"A","data":1,"schemaVersion":0}]}"#,
                "events[0].schemaVersion".to_owned(),
            ),
            (
                r#"{"events":[{"eventType":"A","data":1,"schemaVersion":"1"}]}"#,
                "events[0].schemaVersion".to_owned(),
            ),
            (
                r#"{"events":[{"eventType":"A","data":1,"eventId":"nope"}]}"#,
                "events[0].eventId".to_owned(),
            ),
            (
                r#"{"events":[{"eventType":"A","data":1,"eventid":"x"}]}"#,
                "events[0].eventid".to_owned(),
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body), field, "{body}");
        }
    }

    #[test]
    fn query_parameters_are_checked() {
        let q = Query::parse(Some("from=5&limit=1000&direction=backward")).unwrap();
        let read = q.stream_read().unwrap();
        assert_eq!(
            (read.from, read.limit, read.direction),
            (Some(5), 1000, Direction::Backward)
        );
        let read = Query::parse(None).unwrap().stream_read().unwrap();
        assert_eq!(
            (read.from, read.limit, read.direction),
            (None, 100, Direction::Forward)
        );
        for (q, field) in [
            ("from=0", "from"),
            ("from=-1", "from"),
            ("from=abc", "from"),
            ("from=9223372036854775808", "from"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("direction=sideways", "direction"),
            ("limit=1&limit=2", "limit"),
        ] {
            let err = Query::parse(Some(q))
                .and_then(|q| q.stream_read())
                .unwrap_err();
            assert_eq!(err.field, field, "{q}");
        }
    }
}
