//! The DynamoDB requests each operation sends, counted on the wire by an SDK interceptor.
//! Run with `-- --nocapture` to see the table; docs/limits.md quotes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use eventstore_core::limits::MAX_EVENTS_PER_APPEND;
use eventstore_core::{AppendBatch, ExpectedVersion, StreamRead};
use eventstore_tests::{events, stream, TestStore};

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn each_append_mode_costs_a_known_number_of_requests() {
    let t = TestStore::new().await;
    let b = |n| AppendBatch::new(events(n)).unwrap();
    let mut table = Vec::new();
    let mut check = |label: &str, got: BTreeMap<String, u32>, want: &[(&str, u32)]| {
        table.push(format!("{label:<48} {got:?}"));
        assert_eq!(got, counts(want), "{label}");
    };

    let s = stream("Cost");
    t.store
        .append(&s, ExpectedVersion::NoStream, &b(1))
        .await
        .unwrap();
    check("no_stream, 1 event", t.requests.take(), &[("PutItem", 1)]);

    let s2 = stream("Cost");
    t.store
        .append(&s2, ExpectedVersion::Exact(0), &b(10))
        .await
        .unwrap();
    check(
        "exact 0, 10 events",
        t.requests.take(),
        &[("TransactWriteItems", 1)],
    );

    t.store
        .append(&s, ExpectedVersion::Exact(1), &b(1))
        .await
        .unwrap();
    check(
        "exact N>0, 1 event",
        t.requests.take(),
        &[("TransactWriteItems", 1)],
    );

    t.store
        .append(&s, ExpectedVersion::Exact(2), &b(99))
        .await
        .unwrap();
    check(
        "exact N>0, 99 events",
        t.requests.take(),
        &[("TransactWriteItems", 1)],
    );

    t.store
        .append(&s, ExpectedVersion::Exact(101), &b(MAX_EVENTS_PER_APPEND))
        .await
        .unwrap();
    check(
        "exact N>0, 100 events",
        t.requests.take(),
        &[("GetItem", 1), ("TransactWriteItems", 1)],
    );

    t.store
        .append(&s, ExpectedVersion::Any, &b(1))
        .await
        .unwrap();
    check(
        "any, 1 event",
        t.requests.take(),
        &[("Query", 1), ("PutItem", 1)],
    );

    t.store
        .append(&s, ExpectedVersion::StreamExists, &b(5))
        .await
        .unwrap();
    check(
        "stream_exists, 5 events",
        t.requests.take(),
        &[("Query", 1), ("TransactWriteItems", 1)],
    );

    let retry = b(2);
    t.store
        .append(&s2, ExpectedVersion::Exact(10), &retry)
        .await
        .unwrap();
    t.requests.take();
    t.store
        .append(&s2, ExpectedVersion::Exact(10), &retry)
        .await
        .unwrap();
    check(
        "exact retry of a stored append (idempotent)",
        t.requests.take(),
        &[("Query", 1), ("TransactWriteItems", 1)],
    );
    t.store
        .append(&s2, ExpectedVersion::Any, &retry)
        .await
        .unwrap();
    check(
        "any retry of a stored append (idempotent)",
        t.requests.take(),
        &[("Query", 1)],
    );

    t.store
        .append(&s2, ExpectedVersion::Exact(3), &b(1))
        .await
        .unwrap_err();
    check(
        "exact conflict",
        t.requests.take(),
        &[("Query", 2), ("TransactWriteItems", 1)],
    );

    t.store
        .read_stream(&s, StreamRead::default())
        .await
        .unwrap();
    check(
        "read a stream (100 events)",
        t.requests.take(),
        &[("Query", 1)],
    );
    t.store.stream_info(&s).await.unwrap();
    check("stream info", t.requests.take(), &[("Query", 1)]);

    println!("requests sent per operation:\n{}", table.join("\n"));
}
