//! Real API Gateway HTTP API (payload 2.0) events, generated with
//! `sam local generate-event apigateway http-api-proxy` (tests/fixtures/apigw/generate.py),
//! fed through the Lambda entry point `App::handle_lambda` as the runtime would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_http::Mount;
use eventstore_tests::http::{answer, app};
use eventstore_tests::TestStore;
use lambda_http::request::LambdaRequest;

fn fixture(name: &str) -> lambda_http::Request {
    let path = format!("{}/fixtures/apigw/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let event: LambdaRequest = serde_json::from_str(&text).unwrap();
    assert!(
        matches!(event, LambdaRequest::ApiGatewayV2(_)),
        "{name} is an HTTP API v2 event"
    );
    event.into()
}

#[tokio::test]
async fn the_append_and_read_functions_answer_real_api_gateway_events() {
    let t = TestStore::new().await;
    let writer = app(&t, Mount::Write);
    let reader = app(&t, Mount::Read);

    // Base64-encoded body, as API Gateway sends binary-safe payloads.
    let created = answer(writer.handle_lambda(fixture("append")).await.unwrap());
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.json,
        serde_json::json!({"streamId": "Account-42", "fromVersion": 1, "toVersion": 1,
                           "eventIds": ["0190c1f4-5f6e-7a3b-9c1d-2e3f4a5b6c7d"]})
    );
    assert_eq!(created.headers["content-type"], "application/json");

    let retried = answer(writer.handle_lambda(fixture("append")).await.unwrap());
    assert_eq!(retried.status, 200);
    assert_eq!(retried.json, created.json);

    let conflict = answer(
        writer
            .handle_lambda(fixture("append-conflict"))
            .await
            .unwrap(),
    );
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json["error"]["code"], "WrongExpectedVersion");
    assert_eq!(conflict.json["error"]["expectedVersion"], 0);
    assert_eq!(conflict.json["error"]["currentVersion"], 1);

    let invalid = answer(
        writer
            .handle_lambda(fixture("append-invalid"))
            .await
            .unwrap(),
    );
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json["error"]["code"], "InvalidRequest");
    assert_eq!(invalid.json["error"]["field"], "events[0].eventType");

    let read = answer(reader.handle_lambda(fixture("read-stream")).await.unwrap());
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json["streamId"], "Account-42");
    assert_eq!(read.json["next"], serde_json::Value::Null);
    let events = read.json["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["eventId"], "0190c1f4-5f6e-7a3b-9c1d-2e3f4a5b6c7d");
    assert_eq!(events[0]["version"], 1);
    assert_eq!(events[0]["eventType"], "MoneyDeposited");
    assert_eq!(events[0]["schemaVersion"], 1);
    assert_eq!(
        events[0]["metadata"],
        serde_json::json!({"correlationId": "req-1"})
    );
    assert_eq!(events[0]["globalPosition"], serde_json::Value::Null);
    // The 30-digit integer crosses the whole path digit for digit.
    assert!(
        read.text
            .contains(r#""exact": 123456789012345678901234567890"#),
        "{}",
        read.text
    );

    let info = answer(reader.handle_lambda(fixture("stream-info")).await.unwrap());
    assert_eq!(info.status, 200);
    assert_eq!(
        info.json,
        serde_json::json!({"streamId": "Account-42", "category": "Account", "version": 1})
    );

    let all = answer(reader.handle_lambda(fixture("read-all")).await.unwrap());
    assert_eq!(all.status, 200);
    assert_eq!(all.json, serde_json::json!({"events": [], "next": 1}));
}

#[tokio::test]
async fn each_function_serves_only_its_own_routes() {
    let t = TestStore::new().await;
    let reader = app(&t, Mount::Read);
    let writer = app(&t, Mount::Write);
    let refused = answer(reader.handle_lambda(fixture("append")).await.unwrap());
    assert_eq!(refused.status, 404);
    assert_eq!(refused.json["error"]["code"], "NotFound");
    let refused = answer(writer.handle_lambda(fixture("read-stream")).await.unwrap());
    assert_eq!(refused.status, 404);
    assert_eq!(t.item_count().await, 0);

    let unknown = answer(
        reader
            .handle_lambda(fixture("unknown-route"))
            .await
            .unwrap(),
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json["error"]["code"], "NotFound");
}

#[tokio::test]
async fn percent_encoded_stream_ids_are_decoded() {
    let t = TestStore::new().await;
    let reader = app(&t, Mount::Read);
    let missing = answer(
        reader
            .handle_lambda(fixture("stream-info-encoded"))
            .await
            .unwrap(),
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["error"]["code"], "StreamNotFound");
    assert!(missing.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Order/a b"));
}
