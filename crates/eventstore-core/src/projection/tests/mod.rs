//! The projection engine's specification, on the in-memory log and store: no DynamoDB, so
//! these run in milliseconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::port::{CommitLimits, Parked, ProjectionStore};
use super::step::{bounded, MAX_PARKED_ERROR_BYTES};
use super::*;
use crate::memory::{InMemoryLog, InMemoryProjections};

mod fixtures;

use fixtures::{append, engine, log_event_id, row, Counting, Fixable, PerStream, Refusing, Sneaky};

#[tokio::test]
async fn a_catch_up_applies_each_event_once_in_order_and_a_second_changes_nothing() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened", "Ignored", "Deposited"]).await;
    append(&log, "Order-1", &["Placed"]).await;
    let e = engine(&log, InMemoryProjections::new(), vec![Arc::new(Counting)]);
    let report = e.catch_up(&Counting, None).await.unwrap();
    assert_eq!(
        report,
        ProjectReport {
            applied: 3,
            rows_written: 2,
            transactions: 1,
            parked: 0
        }
    );
    assert_eq!(row(&e, "counting", "Account").await, Some(json!(2)));
    assert_eq!(row(&e, "counting", "Order").await, Some(json!(1)));
    assert_eq!(e.checkpoint("counting").await.unwrap().position, 4);
    assert_eq!(
        e.catch_up(&Counting, None).await.unwrap(),
        ProjectReport::default()
    );
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_parked_after_three_attempts_and_the_rest_applied() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened", "Poison", "Deposited"]).await;
    let e = engine(&log, InMemoryProjections::new(), vec![Arc::new(Counting)]);
    for attempt in 1..POISON_ATTEMPTS {
        let err = e.catch_up(&Counting, None).await.unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "cannot apply event {} at position 2: poison (attempt {attempt} of 3)",
                log_event_id(&log, 2).await
            )),
            "{err}"
        );
        // The event before the poison one is applied once, whatever the retries.
        assert_eq!(row(&e, "counting", "Account").await, Some(json!(1)));
    }
    let report = e.catch_up(&Counting, None).await.unwrap();
    assert_eq!((report.applied, report.parked), (1, 1));
    assert_eq!(row(&e, "counting", "Account").await, Some(json!(2)));
    let checkpoint = e.checkpoint("counting").await.unwrap();
    assert_eq!(
        (checkpoint.position, checkpoint.parked, checkpoint.failures),
        (3, 1, 0)
    );
    assert_eq!(
        e.parked("counting").await.unwrap(),
        vec![Parked {
            position: 2,
            event_id: log_event_id(&log, 2).await,
            error: "poison".into()
        }]
    );
}

#[tokio::test]
async fn a_row_written_without_being_declared_is_refused_and_the_event_parked() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened"]).await;
    let e = engine(&log, InMemoryProjections::new(), vec![Arc::new(Sneaky)]);
    for _ in 1..POISON_ATTEMPTS {
        let err = e.catch_up(&Sneaky, None).await.unwrap_err();
        assert!(
            err.to_string().contains(
                "apply wrote row undeclared, which rows() did not declare for this event"
            ),
            "{err}"
        );
    }
    assert_eq!(e.catch_up(&Sneaky, None).await.unwrap().parked, 1);
    assert_eq!(row(&e, "sneaky", "undeclared").await, None);
}

#[tokio::test]
async fn steps_stop_at_the_rows_one_commit_can_hold() {
    let log = InMemoryLog::new();
    for i in 0..10 {
        append(&log, &format!("Account-{i}"), &["Opened"]).await;
    }
    let store = InMemoryProjections::new().with_limits(CommitLimits {
        rows: 4,
        ..InMemoryProjections::new().limits()
    });
    let e = engine(&log, store, vec![Arc::new(PerStream)]);
    let report = e.catch_up(&PerStream, None).await.unwrap();
    assert_eq!(
        (report.applied, report.rows_written, report.transactions),
        (10, 10, 3)
    );
}

#[tokio::test]
async fn steps_stop_at_the_bytes_one_commit_can_hold_and_an_oversized_row_is_parked() {
    let log = InMemoryLog::new();
    for i in 0..6 {
        append(&log, &format!("Account-{i}"), &["Opened"]).await;
    }
    // Each row is its key (9 bytes) and `1` (1 byte): two fit in 25 bytes.
    let limits = CommitLimits {
        bytes: 25,
        row_bytes: 9,
        ..InMemoryProjections::new().limits()
    };
    let e = engine(
        &log,
        InMemoryProjections::new().with_limits(CommitLimits {
            row_bytes: 100,
            ..limits
        }),
        vec![Arc::new(PerStream)],
    );
    let report = e.catch_up(&PerStream, None).await.unwrap();
    assert_eq!((report.applied, report.transactions), (6, 3));

    let e = engine(
        &log,
        InMemoryProjections::new().with_limits(limits),
        vec![Arc::new(PerStream)],
    );
    let err = e.catch_up(&PerStream, None).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "row Account-0 would be 10 bytes, over the in-memory store's 400 KB row limit"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_commit_is_retried_with_fewer_events_and_a_lost_one_re_read() {
    let log = InMemoryLog::new();
    for i in 0..8 {
        append(&log, &format!("Account-{i}"), &["Opened"]).await;
    }
    let store = Refusing {
        inner: InMemoryProjections::new(),
        max_changes: 3,
        lose: Arc::new(AtomicUsize::new(2)),
    };
    let e = engine(&log, store.clone(), vec![Arc::new(PerStream)]);
    let report = e.catch_up(&PerStream, None).await.unwrap();
    // Lost twice; 8 and 4 events refused, 2 committed; back to a full page: 6 refused,
    // 3 committed; the last 3 committed.
    assert_eq!((report.applied, report.transactions), (8, 3));
    for i in 0..8 {
        assert_eq!(
            row(&e, "per-stream", &format!("Account-{i}")).await,
            Some(json!(1))
        );
    }

    // One event whose own rows are refused fails like an event apply refuses.
    let one = Refusing {
        inner: InMemoryProjections::new(),
        max_changes: 0,
        lose: Arc::new(AtomicUsize::new(0)),
    };
    let e = engine(&log, one, vec![Arc::new(PerStream)]);
    let err = e.catch_up(&PerStream, None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the in-memory store refused the transaction writing its rows: too large"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rebuild_fills_a_new_generation_and_switches_readers_to_it() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened", "Deposited"]).await;
    let store = InMemoryProjections::new();
    let e = engine(&log, store.clone(), vec![Arc::new(Counting)]);
    e.catch_up(&Counting, None).await.unwrap();
    append(&log, "Account-2", &["Opened"]).await;
    let mut seen = Vec::new();
    let live = e
        .rebuild(&Counting, |position, head| seen.push((position, head)))
        .await
        .unwrap();
    assert_eq!((live.generation, live.position), (2, 3));
    assert_eq!(seen, vec![(0, 3), (3, 3)]);
    assert_eq!(row(&e, "counting", "Account").await, Some(json!(3)));
    // The old generation is left as it was, and a re-run starts generation 3.
    assert_eq!(
        store
            .rows("counting", 1, "Account", None, 1)
            .await
            .unwrap()
            .0,
        vec![(String::new(), json!(2))]
    );
    assert_eq!(e.rebuild(&Counting, |_, _| {}).await.unwrap().generation, 3);
}

#[tokio::test]
async fn a_pass_over_every_projection_leaves_them_behind_when_out_of_time() {
    let log = InMemoryLog::new();
    for i in 0..150 {
        append(&log, &format!("Account-{i}"), &["Opened"]).await;
    }
    let e = engine(
        &log,
        InMemoryProjections::new(),
        vec![Arc::new(Counting), Arc::new(PerStream)],
    )
    .with_invocation_budget(Duration::ZERO);
    let pass = e.catch_up_all(None).await.unwrap();
    // One round: a step of each (100 events), then out of time.
    assert_eq!(pass.target, 150);
    assert_eq!(pass.behind, vec!["counting", "per-stream"]);
    assert_eq!(e.checkpoint("counting").await.unwrap().position, 100);
    let e = e.with_invocation_budget(Duration::from_secs(60));
    let pass = e.catch_up_all(None).await.unwrap();
    assert!(pass.behind.is_empty() && pass.failed.is_empty());
    assert_eq!(e.checkpoint("per-stream").await.unwrap().position, 150);
}

#[tokio::test]
async fn a_parked_event_is_replayed_after_a_fix_once_and_leaves_the_parked_list() {
    let log = InMemoryLog::new();
    append(&log, "Account-1", &["Opened", "Poison", "Deposited"]).await;
    let fixable = Arc::new(Fixable(std::sync::atomic::AtomicBool::new(false)));
    let e = engine(&log, InMemoryProjections::new(), vec![fixable.clone()]);
    for _ in 1..POISON_ATTEMPTS {
        e.catch_up(fixable.as_ref(), None).await.unwrap_err();
    }
    assert_eq!(e.catch_up(fixable.as_ref(), None).await.unwrap().parked, 1);
    assert_eq!(row(&e, "fixable", "Account").await, Some(json!(2)));

    // Not fixed yet: it stays parked, with its error.
    let still = e.replay_parked(fixable.as_ref(), None).await.unwrap();
    assert_eq!(still.applied, Vec::<u64>::new());
    assert_eq!(still.failed, vec![(2, "not yet".to_owned())]);
    assert_eq!(e.checkpoint("fixable").await.unwrap().parked, 1);

    fixable.0.store(true, Ordering::SeqCst);
    // Only the position asked for: another position replays nothing.
    assert_eq!(
        e.replay_parked(fixable.as_ref(), Some(3)).await.unwrap(),
        super::Replayed::default()
    );
    let replayed = e.replay_parked(fixable.as_ref(), Some(2)).await.unwrap();
    assert_eq!((replayed.applied, replayed.failed), (vec![2], vec![]));
    assert_eq!(row(&e, "fixable", "Account").await, Some(json!(3)));
    let checkpoint = e.checkpoint("fixable").await.unwrap();
    assert_eq!((checkpoint.position, checkpoint.parked), (3, 0));
    assert_eq!(e.parked("fixable").await.unwrap(), vec![]);
    // Replayed once: a second replay finds nothing.
    assert_eq!(
        e.replay_parked(fixable.as_ref(), None).await.unwrap(),
        super::Replayed::default()
    );
    assert_eq!(row(&e, "fixable", "Account").await, Some(json!(3)));
}

#[test]
fn a_parked_error_is_cut_to_its_limit_at_a_character_boundary() {
    assert_eq!(bounded("short"), "short");
    let long = "é".repeat(MAX_PARKED_ERROR_BYTES);
    let cut = bounded(&long);
    // "é" is two bytes: the limit falls between characters or on one's end.
    assert_eq!(cut.len(), MAX_PARKED_ERROR_BYTES);
    let odd = format!("x{long}");
    assert_eq!(bounded(&odd).len(), MAX_PARKED_ERROR_BYTES - 1);
}
