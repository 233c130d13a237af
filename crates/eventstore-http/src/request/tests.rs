//! Every field of every body named in its error; query parameters checked.

use super::*;
use eventstore_core::{Direction, StoreError};

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
