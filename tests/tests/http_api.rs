//! The HTTP contract through the shared router: statuses, bodies, errors, and that bad input
//! never writes anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_core::limits::{MAX_APPEND_PAYLOAD_BYTES, MAX_EVENT_PAYLOAD_BYTES};
use eventstore_core::EventStore;
use eventstore_dynamodb::DynamoEventLog;
use eventstore_http::{App, Mount};
use eventstore_tests::http::{app, call, request};
use eventstore_tests::{sdk_config, TestStore};
use serde_json::json;

#[tokio::test]
async fn invalid_requests_get_400_naming_the_field_and_write_nothing() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let ev = r#"{"eventType":"A","data":1}"#;
    let appends = [
        ("/streams/Order-1/events", "{".to_owned(), "body"),
        ("/streams/Order-1/events", "42".to_owned(), "body"),
        ("/streams/Order-1/events", r#"{"events":[]}"#.to_owned(), "events"),
        ("/streams/Order-1/events", format!(r#"{{"events":[{}]}}"#, vec![ev; 101].join(",")), "events"),
        ("/streams/Order-1/events", format!(r#"{{"expectedVersion":"maybe","events":[{ev}]}}"#), "expectedVersion"),
        ("/streams/Order-1/events", format!(r#"{{"events":[{ev},{{"eventType":"","data":1}}]}}"#), "events[1].eventType"),
        ("/streams/Order-1/events", format!(r#"{{"events":[{ev},{{"eventType":"B","data":1,"metadata":"x"}}]}}"#), "events[1].metadata"),
        ("/streams/Order-1/events", r#"{"events":[{"eventId":"0190c1f4-0000-7000-8000-000000000001","eventType":"A","data":1},{"eventId":"0190c1f4-0000-7000-8000-000000000001","eventType":"A","data":2}]}"#.to_owned(), "events[1].eventId"),
        ("/streams/%24all/events", format!(r#"{{"events":[{ev}]}}"#), "streamId"),
        ("/streams//events", format!(r#"{{"events":[{ev}]}}"#), "streamId"),
        (&format!("/streams/{}/events", "x".repeat(257)), format!(r#"{{"events":[{ev}]}}"#), "streamId"),
        ("/streams/a%07b/events", format!(r#"{{"events":[{ev}]}}"#), "streamId"),
    ];
    for (path, body, field) in appends {
        let a = call(&api, request("POST", path, Some(&body))).await;
        assert_eq!(a.status, 400, "{path} {body}: {}", a.text);
        assert_eq!(a.json["error"]["code"], "InvalidRequest");
        assert_eq!(a.json["error"]["field"], field, "{path} {body}");
        assert!(a.json["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(field));
    }
    let reads = [
        ("/streams/Order-1/events?limit=0", "limit"),
        ("/streams/Order-1/events?limit=1001", "limit"),
        ("/streams/Order-1/events?from=0", "from"),
        ("/streams/Order-1/events?direction=up", "direction"),
        ("/all/events?from=x", "from"),
        ("/types/no%20spaces/events", "eventType"),
        ("/categories/Order-1/events", "category"),
    ];
    for (path, field) in reads {
        let a = call(&api, request("GET", path, None)).await;
        assert_eq!(a.status, 400, "{path}");
        assert_eq!(a.json["error"]["field"], field, "{path}");
    }
    assert_eq!(t.item_count().await, 0);
}

#[tokio::test]
async fn oversized_events_and_requests_get_413_and_write_nothing() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let big = |bytes: usize| format!(r#"{{"eventType":"Big","data":"{}"}}"#, "x".repeat(bytes));
    let one = format!(r#"{{"events":[{}]}}"#, big(MAX_EVENT_PAYLOAD_BYTES));
    let a = call(&api, request("POST", "/streams/Big-1/events", Some(&one))).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json["error"]["code"], "PayloadTooLarge");
    assert_eq!(a.json["error"]["limit"], MAX_EVENT_PAYLOAD_BYTES);

    let each = MAX_EVENT_PAYLOAD_BYTES - 100;
    let n = MAX_APPEND_PAYLOAD_BYTES / each + 1;
    let many = format!(r#"{{"events":[{}]}}"#, vec![big(each); n].join(","));
    let a = call(&api, request("POST", "/streams/Big-1/events", Some(&many))).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json["error"]["limit"], MAX_APPEND_PAYLOAD_BYTES);
    assert_eq!(t.item_count().await, 0);

    // Just under the per-event cap is stored and read back whole.
    let fits = format!(r#"{{"events":[{}]}}"#, big(MAX_EVENT_PAYLOAD_BYTES - 2 - 2));
    let a = call(&api, request("POST", "/streams/Big-1/events", Some(&fits))).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = call(&api, request("GET", "/streams/Big-1/events", None)).await;
    assert_eq!(
        a.json["events"][0]["data"].as_str().unwrap().len(),
        MAX_EVENT_PAYLOAD_BYTES - 4
    );
}

#[tokio::test]
async fn the_contract_walkthrough_append_read_conflict_retry() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let body = r#"{"expectedVersion":"no_stream","events":[
        {"eventId":"0190c1f4-0000-7000-8000-0000000000a1","eventType":"Opened","data":{"owner":"ana"}},
        {"eventId":"0190c1f4-0000-7000-8000-0000000000a2","eventType":"MoneyDeposited","data":{"amount":500},"metadata":{"correlationId":"req-1"},"schemaVersion":2}]}"#;
    let a = call(
        &api,
        request("POST", "/streams/Account-7/events", Some(body)),
    )
    .await;
    assert_eq!(a.status, 201);
    assert_eq!(
        a.json,
        json!({"streamId":"Account-7","fromVersion":1,"toVersion":2,
        "eventIds":["0190c1f4-0000-7000-8000-0000000000a1","0190c1f4-0000-7000-8000-0000000000a2"]})
    );
    let again = call(
        &api,
        request("POST", "/streams/Account-7/events", Some(body)),
    )
    .await;
    assert_eq!((again.status, again.json), (200, a.json));

    let a = call(
        &api,
        request(
            "POST",
            "/streams/Account-7/events",
            Some(r#"{"expectedVersion":1,"events":[{"eventType":"Closed","data":{}}]}"#),
        ),
    )
    .await;
    assert_eq!(a.status, 409);
    assert_eq!(a.json["error"]["expectedVersion"], 1);
    assert_eq!(a.json["error"]["currentVersion"], 2);

    let a = call(&api, request("POST", "/streams/Account-7/events",
        Some(r#"{"expectedVersion":"stream_exists","events":[{"eventType":"Closed","data":{}}]}"#))).await;
    assert_eq!((a.status, a.json["fromVersion"].clone()), (201, json!(3)));

    let a = call(
        &api,
        request("GET", "/streams/Account-7/events?limit=2", None),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["next"], 3);
    assert_eq!(a.json["events"][1]["schemaVersion"], 2);
    assert_eq!(
        a.json["events"][1]["metadata"],
        json!({"correlationId":"req-1"})
    );
    let a = call(
        &api,
        request("GET", "/streams/Account-7/events?from=3", None),
    )
    .await;
    assert_eq!(
        (
            a.json["events"].as_array().unwrap().len(),
            a.json["next"].clone()
        ),
        (1, json!(null))
    );
    let a = call(
        &api,
        request(
            "GET",
            "/streams/Account-7/events?direction=backward&limit=2",
            None,
        ),
    )
    .await;
    let versions: Vec<_> = a.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].clone())
        .collect();
    assert_eq!(
        (versions, a.json["next"].clone()),
        (vec![json!(3), json!(2)], json!(1))
    );

    let a = call(&api, request("GET", "/streams/Account-7", None)).await;
    assert_eq!(
        a.json,
        json!({"streamId":"Account-7","category":"Account","version":3})
    );
    let a = call(&api, request("GET", "/streams/Account-8/events", None)).await;
    assert_eq!(
        (a.status, a.json["error"]["code"].clone()),
        (404, json!("StreamNotFound"))
    );
    let a = call(&api, request("GET", "/types/Opened/events", None)).await;
    assert_eq!(
        (a.status, a.json.clone()),
        (200, json!({"events": [], "next": 1}))
    );
    let a = call(
        &api,
        request("GET", "/categories/Account/events?from=5&limit=3", None),
    )
    .await;
    assert_eq!(
        (a.status, a.json.clone()),
        (200, json!({"events": [], "next": 5}))
    );
}

#[tokio::test]
async fn an_unreachable_dynamodb_is_503_with_retry_after() {
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let log = DynamoEventLog::new(aws_sdk_dynamodb::Client::from_conf(config), "any");
    let api = App::new(EventStore::new(log), Mount::All);
    let a = call(&api, request("GET", "/streams/Order-1", None)).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.headers["retry-after"], "1");
    assert_eq!(a.json["error"]["code"], "Unavailable");
}

#[tokio::test]
async fn internal_failures_are_500_and_reveal_nothing() {
    let t = TestStore::new().await;
    let log = DynamoEventLog::new(t.client.clone(), "no-such-table");
    let api = App::new(EventStore::new(log), Mount::All);
    let a = call(
        &api,
        request(
            "POST",
            "/streams/Order-1/events",
            Some(r#"{"events":[{"eventType":"A","data":1}]}"#),
        ),
    )
    .await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.json,
        json!({"error": {"code": "Internal", "message": "internal error"}})
    );
}

#[tokio::test]
async fn data_nested_ten_thousand_levels_deep_is_stored_and_returned_whole() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!(r#"{{"events":[{{"eventType":"Deep","data":{deep}}}]}}"#);
    let a = call(&api, request("POST", "/streams/Deep-1/events", Some(&body))).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let response = api
        .handle(request("GET", "/streams/Deep-1/events", None), "test")
        .await;
    let text = match response.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    assert!(text.contains(&format!(r#""data":{deep}"#)));
}
