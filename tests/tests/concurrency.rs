//! Many writers on one stream: nothing lost, nothing doubled, versions dense.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use eventstore_core::{AppendBatch, EventStore, ExpectedVersion, StoreError, StreamId, StreamRead};
use eventstore_dynamodb::DynamoEventLog;
use eventstore_tests::{event, stream, LoseWriteAnswers, TestStore};
use uuid::Uuid;

const WRITERS: usize = 16;
const APPENDS_PER_WRITER: usize = 25;

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Track the version, append with it, and on a conflict retry at the reported version.
    Exact,
    Any,
}

/// One writer's loop. Returns the ids whose appends were acknowledged, each exactly once.
async fn writer(
    store: Arc<EventStore<DynamoEventLog>>,
    id: StreamId,
    mode: Mode,
    n: usize,
) -> Vec<Uuid> {
    let mut acknowledged = Vec::new();
    let mut known = 0u64;
    for i in 0..APPENDS_PER_WRITER {
        // The same event (same id) is resent until it is acknowledged, as a client would.
        let batch = AppendBatch::new(vec![event(
            "Written",
            &format!("{{\"writer\":{n},\"i\":{i}}}"),
        )])
        .unwrap();
        loop {
            let expected = match mode {
                Mode::Exact => ExpectedVersion::Exact(known),
                Mode::Any => ExpectedVersion::Any,
            };
            match store.append(&id, expected, &batch).await {
                Ok(out) => {
                    acknowledged.extend(out.event_ids);
                    known = out.to_version;
                    break;
                }
                Err(StoreError::WrongExpectedVersion { current, .. }) => known = current,
                // Ambiguous: it may have been written. Resending the same id is safe.
                Err(StoreError::Unavailable { .. }) => {}
                Err(other) => panic!("writer {n}: {other:?}"),
            }
        }
    }
    acknowledged
}

async fn run(mode: Mode) {
    check(TestStore::new().await, mode).await;
}

async fn check(t: TestStore, mode: Mode) {
    let store = Arc::new(t.store.clone());
    let id = stream("Contended");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|n| tokio::spawn(writer(store.clone(), id.clone(), mode, n)))
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }

    let page = t
        .store
        .read_stream(
            &id,
            StreamRead {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let total = WRITERS * APPENDS_PER_WRITER;
    let versions: Vec<u64> = page.events.iter().map(|e| e.version).collect();
    assert!(
        versions.iter().copied().eq(1..=total as u64),
        "{mode:?}: versions must be exactly 1..={total}; {} events are stored",
        versions.len()
    );
    let stored: HashSet<Uuid> = page.events.iter().map(|e| e.event_id).collect();
    let acked: HashSet<Uuid> = acknowledged.iter().copied().collect();
    assert_eq!(
        acknowledged.len(),
        total,
        "{mode:?}: one acknowledgement per append"
    );
    assert_eq!(stored.len(), total, "{mode:?}: no id stored twice");
    assert_eq!(
        stored, acked,
        "{mode:?}: stored ids are the acknowledged ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_with_exact_versions_lose_and_double_nothing() {
    run(Mode::Exact).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_with_any_lose_and_double_nothing() {
    run(Mode::Any).await;
}

/// The answers to every 3rd write are lost after the write landed; the SDK retries into the
/// events it already stored. Idempotency by event id must turn that into one success.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_whose_answers_are_lost_are_neither_lost_nor_doubled() {
    for mode in [Mode::Exact, Mode::Any] {
        let lose = LoseWriteAnswers::every(3);
        check(TestStore::losing_answers(lose.clone()).await, mode).await;
        assert!(
            lose.lost() >= 50,
            "{mode:?}: only {} answers lost",
            lose.lost()
        );
    }
}
