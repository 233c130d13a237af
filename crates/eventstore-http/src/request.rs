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

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

// Bodies are read without building them. A request body may be 6 MB of anything, and the
// append function has 256 MB: `{"events":[1,1,1,...]}` as a vector of values, or an object
// of a million keys as a map, would cost tens of bytes of heap per byte of body. Here the
// body is checked as JSON by skipping over it, and objects and arrays are walked with serde
// visitors that borrow each member's text from the body and stop at the first unknown or
// repeated key; an array is cut off after the most elements the API accepts (the rest are
// only counted, for the message).

/// The body as JSON text: valid UTF-8 holding exactly one JSON value.
fn json_text(body: &[u8]) -> Result<&str, ValidationError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| invalid("body", format!("is not valid JSON: not UTF-8 ({e})")))?;
    serde_json::from_str::<&RawValue>(text)
        .map_err(|e| invalid("body", format!("is not valid JSON: {e}")))?;
    Ok(text)
}

/// The members of the JSON object `text` named in `allowed`, in that order, borrowed from
/// `text`. `field` names the object, `prefix` is put before a member's name in errors.
fn members<'a, const N: usize>(
    text: &'a str,
    allowed: [&'static str; N],
    field: &str,
    prefix: &str,
) -> Result<[Option<&'a RawValue>; N], ValidationError> {
    struct Members<'p, const N: usize> {
        allowed: [&'static str; N],
        prefix: &'p str,
        refused: &'p mut Option<ValidationError>,
    }

    impl<'de, const N: usize> serde::de::Visitor<'de> for Members<'_, N> {
        type Value = [Option<&'de RawValue>; N];

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            use serde::de::Error;
            let mut found = [None; N];
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                let Some(slot) = self.allowed.iter().position(|a| *a == key) else {
                    *self.refused = Some(invalid(
                        format!("{}{key}", self.prefix),
                        format!(
                            "is not a known field (expected one of: {})",
                            self.allowed.join(", ")
                        ),
                    ));
                    return Err(A::Error::custom("unknown field"));
                };
                if found[slot].is_some() {
                    *self.refused = Some(invalid(
                        format!("{}{key}", self.prefix),
                        "is given more than once",
                    ));
                    return Err(A::Error::custom("repeated field"));
                }
                found[slot] = Some(map.next_value::<&'de RawValue>()?);
            }
            Ok(found)
        }
    }

    let mut refused = None;
    let visitor = Members {
        allowed,
        prefix,
        refused: &mut refused,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = serde::Deserializer::deserialize_map(&mut de, visitor);
    match (result, refused) {
        (_, Some(err)) => Err(err),
        (Ok(found), None) => Ok(found),
        (Err(_), None) => Err(invalid(field, "must be a JSON object")),
    }
}

/// The elements of the JSON array `text`, borrowed from it, if it holds at most `max`;
/// otherwise how many it holds.
fn elements(text: &str, max: usize) -> Result<Result<Vec<&RawValue>, usize>, serde_json::Error> {
    struct Elements(usize);

    impl<'de> serde::de::Visitor<'de> for Elements {
        type Value = Result<Vec<&'de RawValue>, usize>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut kept = Vec::new();
            while let Some(element) = seq.next_element::<&'de RawValue>()? {
                kept.push(element);
                if kept.len() > self.0 {
                    let mut count = kept.len();
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                        count += 1;
                    }
                    return Ok(Err(count));
                }
            }
            Ok(Ok(kept))
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_seq(&mut de, Elements(max))
}

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
    fn repeated_and_unknown_members_are_refused_by_name() {
        let message = |body: &str| match parse_append(body.as_bytes()) {
            Err(ApiError::Store(StoreError::Validation(v))) => {
                format!("{}: {}", v.field, v.message)
            }
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(
            message(r#"{"events":[],"events":[{"eventType":"A","data":1}]}"#),
            "events: is given more than once"
        );
        assert_eq!(
            message(r#"{"events":[{"eventType":"A","data":1,"data":2}]}"#),
            "events[0].data: is given more than once"
        );
        assert_eq!(
            message(r#"{"\u0065vents":[{"eventType":"A","data":1}],"x":1}"#),
            "x: is not a known field (expected one of: expectedVersion, events)"
        );
    }

    #[test]
    fn a_long_events_array_is_refused_with_its_length() {
        let body = format!(r#"{{"events":[{}]}}"#, vec!["1"; 250_000].join(","));
        match parse_append(body.as_bytes()) {
            Err(ApiError::Store(StoreError::Validation(v))) => {
                assert_eq!(v.field, "events");
                assert_eq!(
                    v.message,
                    "holds 250000 events; at most 100 are allowed in one append"
                );
            }
            other => panic!("{other:?}"),
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
