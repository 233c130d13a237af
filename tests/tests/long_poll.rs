//! Long polling: `wait` on the global, type and category reads holds an empty page until an
//! event at `from` is readable, answers as soon as it is, and costs one index Query per
//! poll interval while it waits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore_core::{EventType, GlobalFilter, READ_WAIT_POLL};
use eventstore_http::Mount;
use eventstore_tests::http::{app, call, request};
use eventstore_tests::{event, stream, TestStore};

#[tokio::test]
async fn an_empty_wait_costs_one_index_query_per_interval_and_never_the_counter() {
    let t = TestStore::new().await;
    t.append_sequenced("Lp", vec![event("A", "1")]).await;
    t.requests.take();
    let wait = Duration::from_secs(1);
    let started = Instant::now();
    let page = t
        .store
        .read_global_waiting(&GlobalFilter::All, Some(2), 10, wait)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(page.events.is_empty());
    assert_eq!(page.next, 2, "an empty page keeps the reader where it was");
    assert!(
        elapsed >= wait,
        "answered after {elapsed:?}, before the wait ended"
    );
    let requests = t.requests.take();
    // The first read is read_global's (a Query; an empty page does not read the counter),
    // then one probe Query per interval.
    let probes = (wait.as_millis() / READ_WAIT_POLL.as_millis()) as u32;
    let queries = requests.get("Query").copied().unwrap_or(0);
    assert!(
        (2..=1 + probes).contains(&queries),
        "{queries} Queries in a {wait:?} wait: {requests:?}"
    );
    assert_eq!(requests.len(), 1, "nothing but Queries: {requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_reader_gets_the_event_as_soon_as_it_is_sequenced() {
    let t = Arc::new(TestStore::new().await);
    let wait = Duration::from_secs(20);
    for filter in [
        GlobalFilter::All,
        GlobalFilter::EventType(EventType::parse("Lp.Waited", "type").unwrap()),
    ] {
        let from = t
            .store
            .read_global(&GlobalFilter::All, None, 1000)
            .await
            .unwrap()
            .next;
        let reader = {
            let (t, filter) = (t.clone(), filter.clone());
            tokio::spawn(async move {
                let page = t
                    .store
                    .read_global_waiting(&filter, Some(from), 10, wait)
                    .await
                    .unwrap();
                (page, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        // An event of another type first: a type reader keeps waiting through it. Both are
        // sequenced in one go, so that an `$all` reader sees them on one page.
        let batch = |t: &str| eventstore_core::AppendBatch::new(vec![event(t, "0")]).unwrap();
        for (s, ty) in [(stream("Other"), "Lp.Other"), (stream("Lp"), "Lp.Waited")] {
            t_append(&t, &s, &batch(ty)).await;
        }
        t.sequence_all().await;
        let sequenced = Instant::now();
        let (page, answered) = reader.await.unwrap();
        let waited_for: Vec<&str> = page.events.iter().map(|e| e.event_type.as_str()).collect();
        match filter {
            GlobalFilter::All => assert_eq!(waited_for, ["Lp.Other", "Lp.Waited"]),
            _ => assert_eq!(waited_for, ["Lp.Waited"]),
        }
        assert!(
            answered.duration_since(sequenced) < wait / 2,
            "{filter:?}: answered {:?} after the position was assigned",
            answered.duration_since(sequenced)
        );
    }
}

async fn t_append(
    t: &TestStore,
    s: &eventstore_core::StreamId,
    batch: &eventstore_core::AppendBatch,
) {
    t.store
        .append(s, eventstore_core::ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
}

#[tokio::test]
async fn wait_is_0_to_25_seconds_on_the_global_type_and_category_reads() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    for path in ["/all/events", "/types/A/events", "/categories/Lp/events"] {
        for bad in ["26", "-1", "1.5", "soon", ""] {
            let a = call(&api, request("GET", &format!("{path}?wait={bad}"), None)).await;
            assert_eq!(a.status, 400, "{path}?wait={bad}: {}", a.text);
            assert_eq!(a.json["error"]["field"], "wait");
        }
        let a = call(&api, request("GET", &format!("{path}?wait=0"), None)).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json, serde_json::json!({"events": [], "next": 1}));
    }
    let started = Instant::now();
    let a = call(&api, request("GET", "/all/events?wait=1", None)).await;
    assert_eq!(a.status, 200);
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
}

/// A waiting read whose probes DynamoDB throttles ends in the API's answer for it: 503 with
/// `Retry-After`, not a 500 and not a hang past the wait.
#[tokio::test]
async fn a_throttled_wait_answers_503_with_retry_after() {
    let throttle = eventstore_tests::Throttle::of(&["Query"]);
    let t = TestStore::with_fault(throttle.clone()).await;
    let api = app(&t, Mount::All);
    throttle.start();
    let started = Instant::now();
    let a = call(&api, request("GET", "/all/events?wait=2", None)).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.json["error"]["code"], "Unavailable");
    assert_eq!(a.headers["retry-after"], "1");
    assert!(throttle.throttled() > 0);
    assert!(started.elapsed() < Duration::from_secs(20), "no hang");
    throttle.stop();
    let a = call(&api, request("GET", "/all/events?wait=0", None)).await;
    assert_eq!(a.status, 200, "{}", a.text);
}
