//! `GET /projections/{name}`, `GET /projections/{name}/{key}` and `PUT`/`GET
//! /subscriptions/{name}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_http::Mount;
use eventstore_tests::http::{app, call, request};
use eventstore_tests::TestStore;
use serde_json::json;

#[tokio::test]
async fn projection_status_and_rows() {
    let t = TestStore::new().await;
    let projector = t.projector(eventstore_app::registry().projections).await;
    let api = app(&t, Mount::All).with_projector(projector.clone());
    let a = call(&api, request("GET", "/projections/account-balances", None)).await;
    assert_eq!(
        (a.status, a.json),
        (
            200,
            json!({"name":"account-balances","checkpoint":0,"head":0,"lag":0,"parked":0,"generation":1})
        )
    );
    for (stream, body) in [
        (
            "Account-42",
            r#"{"events":[{"eventType":"AccountOpened","data":{"initialDeposit":10}},{"eventType":"MoneyDeposited","data":{"amount":5}}]}"#,
        ),
        (
            "Account-43",
            r#"{"events":[{"eventType":"AccountOpened","data":{"initialDeposit":1}}]}"#,
        ),
        (
            "Order-1",
            r#"{"events":[{"eventType":"Placed","data":{}}]}"#,
        ),
    ] {
        let a = call(
            &api,
            request("POST", &format!("/streams/{stream}/events"), Some(body)),
        )
        .await;
        assert_eq!(a.status, 201);
    }
    t.sequence_all().await;
    let a = call(&api, request("GET", "/projections/account-balances", None)).await;
    assert_eq!(
        (
            a.json["checkpoint"].clone(),
            a.json["head"].clone(),
            a.json["lag"].clone()
        ),
        (json!(0), json!(4), json!(4))
    );
    for p in projector.projections() {
        projector.catch_up(p.as_ref(), None).await.unwrap();
    }
    let a = call(&api, request("GET", "/projections/account-balances", None)).await;
    assert_eq!(
        (a.json["checkpoint"].clone(), a.json["lag"].clone()),
        (json!(4), json!(0))
    );

    let a = call(
        &api,
        request("GET", "/projections/account-balances/42", None),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (
            a.json["projection"].clone(),
            a.json["key"].clone(),
            a.json["value"]["balance"].clone(),
            a.json["value"]["transactionCount"].clone(),
            a.json["value"]["isOpen"].clone()
        ),
        (
            json!("account-balances"),
            json!("42"),
            json!(15),
            json!(2),
            json!(true)
        )
    );
    let a = call(
        &api,
        request("GET", "/projections/account-balances/99", None),
    )
    .await;
    assert_eq!(
        (a.status, a.json["error"]["code"].clone()),
        (404, json!("NotFound"))
    );
    let a = call(&api, request("GET", "/projections/no-such/1", None)).await;
    assert_eq!(
        (a.status, a.json["error"]["code"].clone()),
        (404, json!("NotFound"))
    );
    let a = call(&api, request("GET", "/projections/Bad_Name", None)).await;
    assert_eq!(
        (a.status, a.json["error"]["field"].clone()),
        (400, json!("name"))
    );

    // A category's streams, one a page.
    let a = call(
        &api,
        request("GET", "/projections/category-streams/Account?limit=1", None),
    )
    .await;
    assert_eq!(a.json["items"][0]["item"], json!("Account-42"));
    assert_eq!(a.json["items"][0]["value"]["version"], json!(2));
    assert_eq!(a.json["next"], json!("Account-42"));
    let a = call(
        &api,
        request(
            "GET",
            "/projections/category-streams/Account?limit=1&after=Account-42",
            None,
        ),
    )
    .await;
    assert_eq!(a.json["items"][0]["item"], json!("Account-43"));
    assert_eq!(a.json["next"], json!(null));
}

#[tokio::test]
async fn subscription_checkpoints_never_move_back_unless_forced() {
    let t = TestStore::new().await;
    let projector = t.projector(vec![]).await;
    let api = app(&t, Mount::All).with_projector(projector);
    let a = call(&api, request("GET", "/subscriptions/billing", None)).await;
    assert_eq!(a.status, 404);
    let put = |body: &str| request("PUT", "/subscriptions/billing", Some(body)).clone();
    let a = call(&api, put(r#"{"position":5}"#)).await;
    assert_eq!(
        (a.status, a.json),
        (200, json!({"name":"billing","position":5}))
    );
    let a = call(&api, put(r#"{"position":5}"#)).await;
    assert_eq!(a.status, 200, "the same position again is fine");
    let a = call(&api, put(r#"{"position":3}"#)).await;
    assert_eq!(
        (
            a.status,
            a.json["error"]["code"].clone(),
            a.json["error"]["currentPosition"].clone()
        ),
        (409, json!("CheckpointBackwards"), json!(5))
    );
    let a = call(&api, request("GET", "/subscriptions/billing", None)).await;
    assert_eq!(a.json, json!({"name":"billing","position":5}));
    let a = call(&api, put(r#"{"position":3,"force":true}"#)).await;
    assert_eq!(a.status, 200);
    let a = call(&api, request("GET", "/subscriptions/billing", None)).await;
    assert_eq!(a.json, json!({"name":"billing","position":3}));

    for (body, field) in [
        ("{}", "position"),
        (r#"{"position":-1}"#, "position"),
        (r#"{"position":1,"force":"yes"}"#, "force"),
        (r#"{"position":1,"other":1}"#, "other"),
        ("nope", "body"),
    ] {
        let a = call(&api, put(body)).await;
        assert_eq!(
            (a.status, a.json["error"]["field"].clone()),
            (400, json!(field)),
            "{body}"
        );
    }
    let a = call(
        &api,
        request(
            "PUT",
            "/subscriptions/has%20space",
            Some(r#"{"position":1}"#),
        ),
    )
    .await;
    assert_eq!(
        (a.status, a.json["error"]["field"].clone()),
        (400, json!("name"))
    );
    let read_only = app(&t, Mount::Read).with_projector(t.projector(vec![]).await);
    let a = call(&read_only, put(r#"{"position":9}"#)).await;
    assert_eq!(a.status, 404);
}
