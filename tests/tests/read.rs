//! Reading streams against a real DynamoDB API: paging, directions, round trips, not found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore_core::{
    AppendBatch, Direction, EventData, ExpectedVersion, Metadata, StoreError, StreamRead,
};
use eventstore_tests::{event, events, stream, TestStore};

fn read(from: Option<u64>, direction: Direction, limit: usize) -> StreamRead {
    StreamRead {
        from,
        direction,
        limit,
    }
}

#[tokio::test]
async fn fifty_events_of_30_kb_read_completely_across_dynamodbs_1_mb_pages() {
    let t = TestStore::new().await;
    let id = stream("Doc");
    let blob = format!("\"{}\"", "x".repeat(30 * 1024));
    for chunk in 0..5 {
        let b: Vec<_> = (0..10).map(|_| event("Blob", &blob)).collect();
        t.store
            .append(
                &id,
                ExpectedVersion::Exact(chunk * 10),
                &AppendBatch::new(b).unwrap(),
            )
            .await
            .unwrap();
    }
    // 50 × 30 KB is 1.5 MB: no single Query page can hold it.
    let page = t
        .store
        .read_stream(&id, read(None, Direction::Forward, 1000))
        .await
        .unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>()
    );
    assert_eq!(page.next, None);
    assert!(page.events.iter().all(|e| e.data.as_json() == blob));

    let page = t
        .store
        .read_stream(&id, read(None, Direction::Backward, 1000))
        .await
        .unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=50).rev().collect::<Vec<_>>()
    );
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn pages_forward_and_backward_chain_through_next() {
    let t = TestStore::new().await;
    let id = stream("Paged");
    t.store
        .append(
            &id,
            ExpectedVersion::NoStream,
            &AppendBatch::new(events(25)).unwrap(),
        )
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut from = Some(1);
    while let Some(f) = from {
        let page = t
            .store
            .read_stream(&id, read(Some(f), Direction::Forward, 10))
            .await
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.version));
        from = page.next;
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());

    let first = t
        .store
        .read_stream(&id, read(None, Direction::Backward, 10))
        .await
        .unwrap();
    assert_eq!(first.events.first().map(|e| e.version), Some(25));
    assert_eq!(first.next, Some(15));
    let mut seen = Vec::new();
    let mut from = Some(25);
    while let Some(f) = from {
        let page = t
            .store
            .read_stream(&id, read(Some(f), Direction::Backward, 10))
            .await
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.version));
        from = page.next;
    }
    assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());

    // Exactly at the end: no next page.
    let page = t
        .store
        .read_stream(&id, read(Some(16), Direction::Forward, 10))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 10);
    assert_eq!(page.next, None);
    // Past the end of an existing stream: an empty page, not "not found".
    let page = t
        .store
        .read_stream(&id, read(Some(26), Direction::Forward, 10))
        .await
        .unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.next, None);
    // Backward from beyond the end starts at the last event.
    let page = t
        .store
        .read_stream(&id, read(Some(1000), Direction::Backward, 2))
        .await
        .unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![25, 24]
    );
    assert_eq!(page.next, Some(23));
}

#[tokio::test]
async fn a_stream_without_events_is_not_found() {
    let t = TestStore::new().await;
    let id = stream("Ghost");
    assert!(matches!(
        t.store.read_stream(&id, StreamRead::default()).await,
        Err(StoreError::StreamNotFound(s)) if s == id.as_str()
    ));
    assert!(matches!(
        t.store.stream_info(&id).await,
        Err(StoreError::StreamNotFound(_))
    ));
}

#[tokio::test]
async fn stream_info_reports_version_and_category() {
    let t = TestStore::new().await;
    let id = stream("Order");
    t.store
        .append(
            &id,
            ExpectedVersion::Any,
            &AppendBatch::new(events(7)).unwrap(),
        )
        .await
        .unwrap();
    let info = t.store.stream_info(&id).await.unwrap();
    assert_eq!(info.version, 7);
    assert_eq!(info.category.as_str(), "Order");
    assert_eq!(info.stream_id, id);
}

#[tokio::test]
async fn data_and_metadata_come_back_exactly_as_appended() {
    let t = TestStore::new().await;
    let id = stream("Json");
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let samples = [
        r#"{"big":123456789012345678901234567890123456789012,"neg":-98765432109876543210987654321}"#,
        r#"{"f":0.1,"tiny":1e-310,"exp":6.02214076e23,"long":3.14159265358979323846264338327950288}"#,
        r#"{"unicode":"Grüße, 世界 🚀","escaped":"line\nbreak \"quoted\" \u0000","empty":{},"list":[]}"#,
        "null",
        "true",
        "\"just a string\"",
        "-0",
        "[1, 2,\n 3]",
        &deep,
    ];
    let batch: Vec<_> = samples
        .iter()
        .map(|text| {
            let mut e = event("Sample", text);
            e.metadata = Metadata::from_json(
                r#"{"trace":"ü","n":18446744073709551616,"nested":{"a":[null]}}"#.into(),
                "metadata",
            )
            .unwrap();
            e
        })
        .collect();
    t.store
        .append(
            &id,
            ExpectedVersion::NoStream,
            &AppendBatch::new(batch.clone()).unwrap(),
        )
        .await
        .unwrap();
    let page = t
        .store
        .read_stream(&id, StreamRead::default())
        .await
        .unwrap();
    assert_eq!(page.events.len(), samples.len());
    for (stored, sent) in page.events.iter().zip(&batch) {
        assert_eq!(stored.data, sent.data);
        assert_eq!(stored.metadata, sent.metadata);
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.schema_version, 1);
        assert_eq!(stored.global_position, None);
    }
    // The exact text comes back, so no digit of the 42-digit integer is lost.
    assert_eq!(page.events[0].data.as_json(), samples[0]);
    assert!(EventData::from_json(deep, "data").is_ok());
}

#[tokio::test]
async fn read_parameters_are_validated() {
    let t = TestStore::new().await;
    let id = stream("Val");
    for (bad, field) in [
        (read(None, Direction::Forward, 0), "limit"),
        (read(None, Direction::Forward, 1001), "limit"),
        (read(Some(0), Direction::Forward, 10), "from"),
    ] {
        match t.store.read_stream(&id, bad).await {
            Err(StoreError::Validation(e)) => assert_eq!(e.field, field),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(
        t.requests.take().is_empty(),
        "validation must not reach DynamoDB"
    );
}
