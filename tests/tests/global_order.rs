//! Reading the global order, by event type and by category, end to end: appends through the
//! HTTP router, sequencing through the local event source, reads through the router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_http::Mount;
use eventstore_tests::http::{app, call, request};
use eventstore_tests::TestStore;
use serde_json::{json, Value};

/// (streamId, version, eventType, globalPosition) of a page's events, and its `next`.
fn summary(page: &Value) -> (Vec<(String, u64, String, u64)>, u64) {
    let events = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["streamId"].as_str().unwrap().to_owned(),
                e["version"].as_u64().unwrap(),
                e["eventType"].as_str().unwrap().to_owned(),
                e["globalPosition"].as_u64().unwrap(),
            )
        })
        .collect();
    (events, page["next"].as_u64().unwrap())
}

fn ev(stream: &str, version: u64, t: &str, position: u64) -> (String, u64, String, u64) {
    (stream.to_owned(), version, t.to_owned(), position)
}

#[tokio::test]
async fn all_types_and_categories_page_through_next_without_skipping() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let empty = call(&api, request("GET", "/all/events", None)).await;
    assert_eq!(
        (empty.status, empty.json),
        (200, json!({"events": [], "next": 1}))
    );

    let appends = [
        (
            "Order-1",
            r#"[{"eventType":"Placed","data":1},{"eventType":"Paid","data":2}]"#,
        ),
        ("Cart-1", r#"[{"eventType":"Added","data":3}]"#),
        ("Order-2", r#"[{"eventType":"Placed","data":4}]"#),
        ("Cart-1", r#"[{"eventType":"Removed","data":5}]"#),
        ("Order-1", r#"[{"eventType":"Shipped","data":6}]"#),
    ];
    for (stream, events) in appends {
        let body = format!(r#"{{"events":{events}}}"#);
        let path = format!("/streams/{stream}/events");
        let a = call(&api, request("POST", &path, Some(&body))).await;
        assert_eq!(a.status, 201, "{}", a.text);
        // Appended but not sequenced yet: not in the global order.
        let page = call(&api, request("GET", "/all/events?from=1&limit=100", None)).await;
        let before = summary(&page.json).0.len();
        t.sequence_all().await;
        let page = call(&api, request("GET", "/all/events?from=1&limit=100", None)).await;
        assert!(summary(&page.json).0.len() > before);
    }

    // $all, three events a page.
    let a = call(&api, request("GET", "/all/events?limit=3", None)).await;
    assert_eq!(
        summary(&a.json),
        (
            vec![
                ev("Order-1", 1, "Placed", 1),
                ev("Order-1", 2, "Paid", 2),
                ev("Cart-1", 1, "Added", 3)
            ],
            4
        )
    );
    let a = call(&api, request("GET", "/all/events?from=4&limit=3", None)).await;
    assert_eq!(
        summary(&a.json),
        (
            vec![
                ev("Order-2", 1, "Placed", 4),
                ev("Cart-1", 2, "Removed", 5),
                ev("Order-1", 3, "Shipped", 6)
            ],
            7
        )
    );
    let a = call(&api, request("GET", "/all/events?from=7&limit=3", None)).await;
    assert_eq!(summary(&a.json), (vec![], 7));
    // The payload and metadata come back as appended, with the position filled in.
    let a = call(&api, request("GET", "/all/events?from=3&limit=1", None)).await;
    assert_eq!(a.json["events"][0]["data"], json!(3));
    assert_eq!(a.json["events"][0]["metadata"], json!({}));

    // By type: one a page, following next. `next` passes over the other types' positions
    // the read has seen: after Placed at 1, positions 2 and 3 are not Placed.
    let a = call(&api, request("GET", "/types/Placed/events?limit=1", None)).await;
    assert_eq!(summary(&a.json), (vec![ev("Order-1", 1, "Placed", 1)], 4));
    let a = call(
        &api,
        request("GET", "/types/Placed/events?from=4&limit=1", None),
    )
    .await;
    // The last Placed: the read goes on to the end of the log looking for another.
    assert_eq!(summary(&a.json), (vec![ev("Order-2", 1, "Placed", 4)], 7));
    let a = call(
        &api,
        request("GET", "/types/Placed/events?from=5&limit=1", None),
    )
    .await;
    assert_eq!(summary(&a.json), (vec![], 7));
    // A type with no events moves to the end of the log, so its reader does not read the
    // same positions again.
    let a = call(&api, request("GET", "/types/Nothing/events", None)).await;
    assert_eq!(summary(&a.json), (vec![], 7));
    // From an earlier position the same events come back (`next` is only a checkpoint).
    let a = call(
        &api,
        request("GET", "/types/Placed/events?from=2&limit=1", None),
    )
    .await;
    assert_eq!(summary(&a.json), (vec![ev("Order-2", 1, "Placed", 4)], 7));

    // By category, from the middle.
    let a = call(&api, request("GET", "/categories/Cart/events", None)).await;
    assert_eq!(
        summary(&a.json),
        (
            vec![ev("Cart-1", 1, "Added", 3), ev("Cart-1", 2, "Removed", 5)],
            7
        )
    );
    let a = call(
        &api,
        request("GET", "/categories/Order/events?from=2&limit=2", None),
    )
    .await;
    assert_eq!(
        summary(&a.json),
        (
            vec![ev("Order-1", 2, "Paid", 2), ev("Order-2", 1, "Placed", 4)],
            6
        )
    );
    let a = call(
        &api,
        request("GET", "/categories/Order/events?from=6", None),
    )
    .await;
    assert_eq!(summary(&a.json), (vec![ev("Order-1", 3, "Shipped", 6)], 7));

    // A stream read shows the positions too.
    let a = call(&api, request("GET", "/streams/Cart-1/events", None)).await;
    let positions: Vec<Value> = a.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["globalPosition"].clone())
        .collect();
    assert_eq!(positions, vec![json!(3), json!(5)]);
}

#[tokio::test]
async fn a_reader_following_next_sees_every_event_once_while_appends_and_sequencing_go_on() {
    let t = std::sync::Arc::new(TestStore::new().await);
    let writer = {
        let t = t.clone();
        tokio::spawn(async move {
            let api = app(&t, Mount::All);
            for i in 0..40 {
                let path = format!("/streams/{}/events", ["Order-9", "Cart-9"][i % 2]);
                let body = format!(r#"{{"events":[{{"eventType":"E{}","data":{i}}}]}}"#, i % 3);
                let a = call(&api, request("POST", &path, Some(&body))).await;
                assert_eq!(a.status, 201);
                if i % 5 == 4 {
                    t.sequence_all().await;
                }
            }
            t.sequence_all().await;
        })
    };
    let api = app(&t, Mount::All);
    let mut seen = Vec::new();
    let mut from = 1;
    let mut finished = false;
    loop {
        let done = finished;
        let a = call(
            &api,
            request("GET", &format!("/all/events?from={from}&limit=7"), None),
        )
        .await;
        let (events, next) = summary(&a.json);
        seen.extend(events.iter().map(|e| e.3));
        from = next;
        if done && events.is_empty() {
            break;
        }
        finished = writer.is_finished();
    }
    writer.await.unwrap();
    assert_eq!(seen, (1..=40).collect::<Vec<u64>>());
}

/// An event item as the sequencer leaves it, written straight into the table: how a test
/// makes `GlobalOrder` show a position while an earlier one is still missing, as a lagging
/// index (or a sequencer between two writes) does.
async fn put_sequenced(t: &TestStore, stream: &str, event_type: &str, position: u64) {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let category = stream.split('-').next().unwrap();
    t.client
        .put_item()
        .table_name(&t.table)
        .item("PK", S(format!("STREAM#{stream}")))
        .item("SK", S("VERSION#00000000000000000001".into()))
        .item("eventId", S(uuid::Uuid::now_v7().to_string()))
        .item("streamId", S(stream.into()))
        .item("category", S(category.into()))
        .item("eventType", S(event_type.into()))
        .item("version", N("1".into()))
        .item("schemaVersion", N("1".into()))
        .item("data", S("{}".into()))
        .item("metadata", S("{}".into()))
        .item("createdAt", S("2026-11-26T06:00:00.000Z".into()))
        .item("globalPosition", N(position.to_string()))
        .item("globalBucket", N((position / 1000).to_string()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_type_read_stops_at_a_hole_in_any_type_and_passes_it_once_filled() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    put_sequenced(&t, "Order-1", "Placed", 1).await;
    put_sequenced(&t, "Cart-1", "Added", 2).await;
    // Position 3 is not shown yet; 4 is a Placed.
    put_sequenced(&t, "Order-2", "Placed", 4).await;
    let placed = call(&api, request("GET", "/types/Placed/events", None)).await;
    assert_eq!(
        summary(&placed.json),
        (vec![ev("Order-1", 1, "Placed", 1)], 3)
    );
    let orders = call(
        &api,
        request("GET", "/categories/Order/events?from=2", None),
    )
    .await;
    assert_eq!(summary(&orders.json), (vec![], 3));
    // Position 3 turns out to be an Added: the Placed at 4 follows.
    put_sequenced(&t, "Cart-2", "Added", 3).await;
    let placed = call(&api, request("GET", "/types/Placed/events?from=3", None)).await;
    assert_eq!(
        summary(&placed.json),
        (vec![ev("Order-2", 1, "Placed", 4)], 5)
    );
}

#[tokio::test]
async fn a_type_read_passes_from_one_full_bucket_to_the_next() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    // Bucket 0 holds positions 1 to 999: full from 995, it hands on to bucket 1.
    for (i, position) in (995..=1001).enumerate() {
        let event_type = if position == 1001 { "Placed" } else { "Added" };
        put_sequenced(&t, &format!("Cart-{i}"), event_type, position).await;
    }
    let placed = call(&api, request("GET", "/types/Placed/events?from=995", None)).await;
    assert_eq!(
        summary(&placed.json),
        (vec![ev("Cart-6", 1, "Placed", 1001)], 1002)
    );
}
