//! Appends against a real DynamoDB API: expected versions, idempotency, atomicity, layout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_core::limits::MAX_EVENTS_PER_APPEND;
use eventstore_core::{AppendBatch, ExpectedVersion, StoreError, StreamRead};
use eventstore_tests::{event, events, s, stream, TestStore};

fn batch(n: usize) -> AppendBatch {
    AppendBatch::new(events(n)).unwrap()
}

fn conflict(err: StoreError) -> (ExpectedVersion, u64) {
    match err {
        StoreError::WrongExpectedVersion { expected, current } => (expected, current),
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
}

async fn versions(t: &TestStore, id: &eventstore_core::StreamId) -> Vec<u64> {
    let page = t
        .store
        .read_stream(
            id,
            StreamRead {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    page.events.iter().map(|e| e.version).collect()
}

#[tokio::test]
async fn no_stream_and_exact_zero_create_a_stream_and_refuse_an_existing_one() {
    let t = TestStore::new().await;
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(0)] {
        let id = stream("Order");
        let out = t.store.append(&id, expected, &batch(2)).await.unwrap();
        assert_eq!(
            (out.from_version, out.to_version, out.created),
            (1, 2, true)
        );
        let err = t.store.append(&id, expected, &batch(1)).await.unwrap_err();
        assert_eq!(conflict(err), (expected, 2));
        assert_eq!(versions(&t, &id).await, vec![1, 2]);
    }
}

#[tokio::test]
async fn exact_version_appends_only_at_that_version() {
    let t = TestStore::new().await;
    let id = stream("Account");
    t.store
        .append(&id, ExpectedVersion::Exact(0), &batch(3))
        .await
        .unwrap();

    let out = t
        .store
        .append(&id, ExpectedVersion::Exact(3), &batch(1))
        .await
        .unwrap();
    assert_eq!((out.from_version, out.to_version), (4, 4));

    // Behind the stream: a version that is taken.
    let err = t
        .store
        .append(&id, ExpectedVersion::Exact(2), &batch(1))
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::Exact(2), 4));
    // Ahead of the stream: must not leave a gap, single event and batch alike.
    let err = t
        .store
        .append(&id, ExpectedVersion::Exact(9), &batch(1))
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::Exact(9), 4));
    let err = t
        .store
        .append(&id, ExpectedVersion::Exact(9), &batch(3))
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::Exact(9), 4));
    // On a stream that does not exist.
    let other = stream("Account");
    let err = t
        .store
        .append(&other, ExpectedVersion::Exact(1), &batch(1))
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::Exact(1), 0));
    assert!(t.raw_items(&other).await.is_empty());

    assert_eq!(versions(&t, &id).await, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_full_batch_ahead_of_the_stream_is_refused_without_a_gap() {
    let t = TestStore::new().await;
    let id = stream("Big");
    t.store
        .append(&id, ExpectedVersion::Any, &batch(1))
        .await
        .unwrap();
    let err = t
        .store
        .append(
            &id,
            ExpectedVersion::Exact(5),
            &batch(MAX_EVENTS_PER_APPEND),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::Exact(5), 1));
    let out = t
        .store
        .append(
            &id,
            ExpectedVersion::Exact(1),
            &batch(MAX_EVENTS_PER_APPEND),
        )
        .await
        .unwrap();
    assert_eq!((out.from_version, out.to_version), (2, 101));
    assert_eq!(t.raw_items(&id).await.len(), 101);
}

#[tokio::test]
async fn stream_exists_requires_at_least_one_event() {
    let t = TestStore::new().await;
    let id = stream("Cart");
    let err = t
        .store
        .append(&id, ExpectedVersion::StreamExists, &batch(1))
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::StreamExists, 0));
    assert!(t.raw_items(&id).await.is_empty());

    t.store
        .append(&id, ExpectedVersion::NoStream, &batch(1))
        .await
        .unwrap();
    let out = t
        .store
        .append(&id, ExpectedVersion::StreamExists, &batch(2))
        .await
        .unwrap();
    assert_eq!((out.from_version, out.to_version), (2, 3));
}

#[tokio::test]
async fn any_appends_after_whatever_is_there() {
    let t = TestStore::new().await;
    let id = stream("Log");
    let out = t
        .store
        .append(&id, ExpectedVersion::Any, &batch(1))
        .await
        .unwrap();
    assert_eq!((out.from_version, out.to_version), (1, 1));
    let out = t
        .store
        .append(&id, ExpectedVersion::Any, &batch(5))
        .await
        .unwrap();
    assert_eq!((out.from_version, out.to_version), (2, 6));
    assert_eq!(versions(&t, &id).await, (1..=6).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_exact_retry_of_a_stored_append_succeeds_and_writes_nothing() {
    let t = TestStore::new().await;
    // One event is a single PutItem, three are a transaction: both paths recognise retries.
    for n in [1, 3] {
        let id = stream("Pay");
        t.store
            .append(&id, ExpectedVersion::Any, &batch(2))
            .await
            .unwrap();
        let b = batch(n);
        let first = t
            .store
            .append(&id, ExpectedVersion::Exact(2), &b)
            .await
            .unwrap();
        assert!(first.created);
        let retry = t
            .store
            .append(&id, ExpectedVersion::Exact(2), &b)
            .await
            .unwrap();
        assert_eq!(retry.from_version, 3);
        assert_eq!(retry.to_version, 2 + n as u64);
        assert_eq!(retry.event_ids, first.event_ids);
        assert!(!retry.created);
        assert_eq!(t.raw_items(&id).await.len(), 2 + n);
    }
}

#[tokio::test]
async fn an_any_retry_of_a_stored_append_succeeds_and_writes_nothing() {
    let t = TestStore::new().await;
    let id = stream("Pay");
    t.store
        .append(&id, ExpectedVersion::Any, &batch(1))
        .await
        .unwrap();
    let b = batch(3);
    let first = t.store.append(&id, ExpectedVersion::Any, &b).await.unwrap();
    let retry = t.store.append(&id, ExpectedVersion::Any, &b).await.unwrap();
    assert_eq!(
        (retry.from_version, retry.to_version, retry.created),
        (2, 4, false)
    );
    assert_eq!(retry.event_ids, first.event_ids);
    assert_eq!(t.raw_items(&id).await.len(), 4);
    // stream_exists retries are recognised the same way.
    let retry = t
        .store
        .append(&id, ExpectedVersion::StreamExists, &b)
        .await
        .unwrap();
    assert_eq!((retry.from_version, retry.created), (2, false));
    assert_eq!(t.raw_items(&id).await.len(), 4);
}

#[tokio::test]
async fn the_same_ids_at_other_versions_or_in_another_order_are_a_conflict() {
    let t = TestStore::new().await;
    let id = stream("Pay");
    let b = batch(2);
    t.store
        .append(&id, ExpectedVersion::NoStream, &b)
        .await
        .unwrap();
    let mut reversed = b.events().to_vec();
    reversed.reverse();
    let reversed = AppendBatch::new(reversed).unwrap();
    let err = t
        .store
        .append(&id, ExpectedVersion::NoStream, &reversed)
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::NoStream, 2));
    // The second event alone at version 1: its id is stored, but at version 2.
    let partial = AppendBatch::new(vec![b.events()[1].clone()]).unwrap();
    let err = t
        .store
        .append(&id, ExpectedVersion::NoStream, &partial)
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::NoStream, 2));
    assert_eq!(t.raw_items(&id).await.len(), 2);
}

#[tokio::test]
async fn a_hundred_events_append_atomically_and_a_conflicting_batch_writes_nothing() {
    let t = TestStore::new().await;
    let id = stream("Bulk");
    let out = t
        .store
        .append(
            &id,
            ExpectedVersion::NoStream,
            &batch(MAX_EVENTS_PER_APPEND),
        )
        .await
        .unwrap();
    assert_eq!((out.from_version, out.to_version), (1, 100));
    assert_eq!(t.raw_items(&id).await.len(), 100);

    // 50 events at 51..100 collide with stored ones at the end: none of them may land.
    let other = stream("Bulk");
    t.store
        .append(&other, ExpectedVersion::NoStream, &batch(60))
        .await
        .unwrap();
    let err = t
        .store
        .append(&other, ExpectedVersion::Exact(10), &batch(50))
        .await
        .unwrap_err();
    assert_eq!(conflict(err), (ExpectedVersion::Exact(10), 60));
    assert_eq!(t.raw_items(&other).await.len(), 60);

    assert!(matches!(
        AppendBatch::new(events(MAX_EVENTS_PER_APPEND + 1)),
        Err(StoreError::Validation(e)) if e.field == "events"
    ));
}

#[tokio::test]
async fn each_event_is_one_item_with_the_contract_layout() {
    let t = TestStore::new().await;
    let id = eventstore_core::StreamId::parse(
        &format!("Account-{}-x", uuid::Uuid::new_v4().simple()),
        "streamId",
    )
    .unwrap();
    let mut e = event("MoneyDeposited", r#"{"amount":500}"#);
    e.schema_version = 3;
    e.metadata =
        eventstore_core::Metadata::from_json(r#"{"correlationId":"req-1"}"#.into(), "m").unwrap();
    let b = AppendBatch::new(vec![e.clone(), event("Noted", "null")]).unwrap();
    t.store
        .append(&id, ExpectedVersion::NoStream, &b)
        .await
        .unwrap();

    let mut items = t.raw_items(&id).await;
    items.sort_by(|a, b| s(a, "SK").cmp(s(b, "SK")));
    assert_eq!(items.len(), 2);
    let first = &items[0];
    assert_eq!(s(first, "PK"), format!("STREAM#{id}"));
    assert_eq!(s(first, "SK"), "VERSION#00000000000000000001");
    assert_eq!(s(&items[1], "SK"), "VERSION#00000000000000000002");
    assert_eq!(s(first, "eventId"), e.event_id.to_string());
    assert_eq!(s(first, "eventType"), "MoneyDeposited");
    assert_eq!(s(first, "streamId"), id.as_str());
    assert_eq!(s(first, "category"), "Account");
    assert_eq!(s(first, "data"), r#"{"amount":500}"#);
    assert_eq!(s(first, "metadata"), r#"{"correlationId":"req-1"}"#);
    assert_eq!(first["version"].as_n().unwrap(), "1");
    assert_eq!(first["schemaVersion"].as_n().unwrap(), "3");
    let created = s(first, "createdAt");
    assert!(
        eventstore_core::Timestamp::parse(created).is_some(),
        "{created}"
    );
    // Not sequenced yet: no global position, so not in the GlobalOrder index.
    assert!(!first.contains_key("globalPosition"));
    assert!(!first.contains_key("globalBucket"));
    let mut names: Vec<&str> = first.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "PK",
            "SK",
            "category",
            "createdAt",
            "data",
            "eventId",
            "eventType",
            "metadata",
            "schemaVersion",
            "streamId",
            "version"
        ]
    );
}
