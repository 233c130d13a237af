//! Catch-up subscriptions in the library, on DynamoDB: history, then live events as the
//! sequencer positions them, with the checkpoint in the table `/subscriptions/{name}` serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use eventstore_core::{Category, GlobalFilter, Subscription};
use eventstore_http::Mount;
use eventstore_tests::http::{app, call, request};
use eventstore_tests::{event, stream, TestStore};
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_reads_history_then_follows_and_its_checkpoint_is_the_apis() {
    let t = Arc::new(TestStore::new().await);
    let projector = t.projector(Vec::new()).await;
    let api = app(&t, Mount::All).with_projector(projector.clone());
    let account = stream("Account");
    t.append_sequenced(
        account.as_str(),
        vec![event("Opened", "{}"), event("Deposited", "{}")],
    )
    .await;
    t.append_sequenced(stream("Order").as_str(), vec![event("Placed", "{}")])
        .await;

    let accounts = GlobalFilter::Category(Category::parse("Account", "category").unwrap());
    let mut events = Subscription::new(t.store.clone(), projector.store().clone(), "printer")
        .filter(accounts)
        .stream();
    let history: Vec<String> = events
        .by_ref()
        .take(2)
        .map(|e| e.unwrap().event_type.as_str().to_owned())
        .collect()
        .await;
    assert_eq!(history, ["Opened", "Deposited"]);

    // Live: appended, then positioned by the sequencer while the subscriber waits.
    let writer = t.clone();
    let later = stream("Account");
    let appended = later.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer
            .append_sequenced(appended.as_str(), vec![event("Opened", "{}")])
            .await;
    });
    let live = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("the live event arrives")
        .unwrap()
        .unwrap();
    assert_eq!(live.stream_id, later);
    assert_eq!(live.global_position, Some(4));

    // Deposited (position 2) was handled when the live event was asked for.
    let a = call(&api, request("GET", "/subscriptions/printer", None)).await;
    assert_eq!(
        a.json,
        serde_json::json!({"name": "printer", "position": 3})
    );
}

/// A subscription whose reads DynamoDB throttles waits it out and goes on where it was: no
/// error reaches the app, nothing is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_rides_out_throttled_reads() {
    let throttle = eventstore_tests::Throttle::of(&["Query"]);
    let t = TestStore::with_fault(throttle.clone()).await;
    let projector = t.projector(Vec::new()).await;
    t.append_sequenced(stream("Account").as_str(), vec![event("Opened", "{}")])
        .await;
    let mut events = Subscription::new(t.store.clone(), projector.store().clone(), "rider")
        .filter(GlobalFilter::Category(
            Category::parse("Account", "c").unwrap(),
        ))
        .stream();
    assert_eq!(
        events.next().await.unwrap().unwrap().event_type.as_str(),
        "Opened"
    );
    // Caught up and waiting: its reads are throttled while a new event arrives (the
    // append is a put and the sequencer has a client of its own, so neither is).
    throttle.start();
    t.append_sequenced(stream("Account").as_str(), vec![event("Deposited", "{}")])
        .await;
    let stopper = throttle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        stopper.stop();
    });
    let second = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("it goes on once DynamoDB recovers")
        .unwrap()
        .unwrap();
    assert_eq!(second.event_type.as_str(), "Deposited");
    assert!(throttle.throttled() > 0, "the reads were throttled");
}
