//! `PUT` and `GET /streams/{streamId}/snapshot`: snapshots for apps that are not in Rust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_core::limits::MAX_POSITION;
use eventstore_core::snapshot::MAX_SNAPSHOT_STATE_BYTES;
use eventstore_http::Mount;
use eventstore_tests::http::{app, call, request};
use eventstore_tests::TestStore;
use serde_json::{json, Value};

fn summary(a: &eventstore_tests::http::Answer) -> (u16, Value) {
    let mut body = a.json.clone();
    if let Some(o) = body.as_object_mut() {
        // The time is the server's; check its shape, then drop it.
        if let Some(created) = o.remove("createdAt") {
            assert!(created.as_str().unwrap().ends_with('Z'), "{created}");
        }
    }
    (a.status, body)
}

#[tokio::test]
async fn snapshots_are_stored_read_and_only_replaced_by_newer_ones() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let events = r#"{"events":[{"eventType":"A","data":1},{"eventType":"B","data":2},{"eventType":"C","data":3}]}"#;
    let a = call(
        &api,
        request("POST", "/streams/Cart-7/events", Some(events)),
    )
    .await;
    assert_eq!(a.status, 201);

    let a = call(&api, request("GET", "/streams/Cart-7/snapshot", None)).await;
    assert_eq!(
        (a.status, a.json["error"]["code"].clone()),
        (404, json!("NotFound"))
    );

    let put = |version: u64, schema: u32, state: &str| {
        format!(r#"{{"version":{version},"schemaVersion":{schema},"state":{state}}}"#)
    };
    let a = call(
        &api,
        request(
            "PUT",
            "/streams/Cart-7/snapshot",
            Some(&put(
                2,
                1,
                r#"{"items":["a","b"],"big":123456789012345678901234567890}"#,
            )),
        ),
    )
    .await;
    // The state comes back as the exact JSON text that was sent (a parsed body would round
    // the big number, so the text is compared).
    let stored = r#"{"streamId":"Cart-7","version":2,"schemaVersion":1,"state":{"items":["a","b"],"big":123456789012345678901234567890},"createdAt":"#;
    assert_eq!(a.status, 200);
    assert!(a.text.starts_with(stored), "{}", a.text);
    let a = call(&api, request("GET", "/streams/Cart-7/snapshot", None)).await;
    assert_eq!(a.status, 200);
    assert!(a.text.starts_with(stored), "{}", a.text);

    // Older: refused, the stored one stays.
    let a = call(
        &api,
        request("PUT", "/streams/Cart-7/snapshot", Some(&put(1, 1, "{}"))),
    )
    .await;
    assert_eq!(
        (
            a.status,
            a.json["error"]["code"].clone(),
            a.json["error"]["storedVersion"].clone()
        ),
        (409, json!("SnapshotOutdated"), json!(2))
    );
    // The same version again (say, a new state schema) and a newer one replace it.
    let a = call(
        &api,
        request("PUT", "/streams/Cart-7/snapshot", Some(&put(2, 2, "[1]"))),
    )
    .await;
    assert_eq!(
        summary(&a),
        (
            200,
            json!({"streamId":"Cart-7","version":2,"schemaVersion":2,"state":[1]})
        )
    );
    let a = call(
        &api,
        request("PUT", "/streams/Cart-7/snapshot", Some(&put(3, 2, "null"))),
    )
    .await;
    assert_eq!(a.status, 200);
    let a = call(&api, request("GET", "/streams/Cart-7/snapshot", None)).await;
    assert_eq!(
        summary(&a),
        (
            200,
            json!({"streamId":"Cart-7","version":3,"schemaVersion":2,"state":null})
        )
    );

    // Beyond the stream's version, or on a stream with no events: 400, nothing stored.
    let a = call(
        &api,
        request("PUT", "/streams/Cart-7/snapshot", Some(&put(4, 1, "{}"))),
    )
    .await;
    assert_eq!(
        (a.status, a.json["error"]["field"].clone()),
        (400, json!("version"))
    );
    assert!(a.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("current version 3"));
    let a = call(
        &api,
        request("PUT", "/streams/Cart-8/snapshot", Some(&put(1, 1, "{}"))),
    )
    .await;
    assert_eq!(
        (a.status, a.json["error"]["field"].clone()),
        (400, json!("version"))
    );
    let a = call(&api, request("GET", "/streams/Cart-8/snapshot", None)).await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn bad_snapshot_requests_name_the_field_and_store_nothing() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let a = call(
        &api,
        request(
            "POST",
            "/streams/Cart-9/events",
            Some(r#"{"events":[{"eventType":"A","data":1}]}"#),
        ),
    )
    .await;
    assert_eq!(a.status, 201);
    let max = MAX_POSITION;
    let cases = [
        ("{", "body"),
        ("[]", "body"),
        (r#"{"schemaVersion":1,"state":{}}"#, "version"),
        (r#"{"version":0,"schemaVersion":1,"state":{}}"#, "version"),
        (
            &format!(
                r#"{{"version":{},"schemaVersion":1,"state":{{}}}}"#,
                max as u128 + 1
            ),
            "version",
        ),
        (r#"{"version":"1","schemaVersion":1,"state":{}}"#, "version"),
        (r#"{"version":1,"state":{}}"#, "schemaVersion"),
        (
            r#"{"version":1,"schemaVersion":0,"state":{}}"#,
            "schemaVersion",
        ),
        (r#"{"version":1,"schemaVersion":1}"#, "state"),
        (
            r#"{"version":1,"schemaVersion":1,"state":{},"extra":1}"#,
            "extra",
        ),
    ];
    for (body, field) in cases {
        let a = call(&api, request("PUT", "/streams/Cart-9/snapshot", Some(body))).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        assert_eq!(a.json["error"]["field"], field, "{body}");
    }
    let big = format!(
        r#"{{"version":1,"schemaVersion":1,"state":"{}"}}"#,
        "x".repeat(MAX_SNAPSHOT_STATE_BYTES)
    );
    let a = call(&api, request("PUT", "/streams/Cart-9/snapshot", Some(&big))).await;
    assert_eq!(
        (a.status, a.json["error"]["code"].clone()),
        (413, json!("PayloadTooLarge"))
    );
    let a = call(&api, request("GET", "/streams/Cart-9/snapshot", None)).await;
    assert_eq!(a.status, 404, "nothing was stored");

    // The write route belongs to the append function, the read route to the read function.
    let read_only = app(&t, Mount::Read);
    let a = call(
        &read_only,
        request(
            "PUT",
            "/streams/Cart-9/snapshot",
            Some(r#"{"version":1,"schemaVersion":1,"state":{}}"#),
        ),
    )
    .await;
    assert_eq!(a.status, 404);
    let write_only = app(&t, Mount::Write);
    let a = call(
        &write_only,
        request("GET", "/streams/Cart-9/snapshot", None),
    )
    .await;
    assert_eq!(a.status, 404);
}
