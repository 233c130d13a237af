//! Failure paths that must end in a clear answer, never a 500, a stall or a duplicate:
//! DynamoDB behaviour moto lacks is injected with SDK interceptors (see `tests/src/faults/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bank_account::{AccountCommand, BankAccount};
use eventstore_core::{
    AppendBatch, CommandContext, CommandError, EventStore, ExpectedVersion, Repository, StoreError,
    StreamRead,
};
use eventstore_dynamodb::trigger::LocalEventSource;
use eventstore_dynamodb::{Client, DynamoEventLog, Sequencer, StreamHint};
use eventstore_http::Mount;
use eventstore_tests::http::{app, call, request};
use eventstore_tests::{
    events, sdk_config, stream, CancelTransactions, LoseWriteAnswers, TestStore, Throttle,
};

const TWO_EVENTS: &str = r#"{"expectedVersion":"no_stream","events":[{"eventType":"A","data":1},{"eventType":"A","data":2}]}"#;

#[tokio::test]
async fn a_throttled_transaction_answers_503_with_retry_after_and_writes_nothing() {
    for reason in [
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "TransactionConflict",
    ] {
        let fault = CancelTransactions::always(reason);
        let t = TestStore::with_fault(fault.clone()).await;
        let api = app(&t, Mount::All);
        let a = call(
            &api,
            request("POST", "/streams/Order-1/events", Some(TWO_EVENTS)),
        )
        .await;
        assert_eq!(a.status, 503, "{reason}: {}", a.text);
        assert_eq!(a.json["error"]["code"], "Unavailable", "{reason}");
        assert!(a.headers.contains_key("retry-after"), "{reason}");
        // Each throttled attempt is retried after a pause before the store gives up.
        assert_eq!(fault.cancelled(), 5, "{reason}");
        assert_eq!(t.item_count().await, 0, "{reason}");
    }
}

#[tokio::test]
async fn a_transaction_throttled_briefly_is_retried_and_commits_once() {
    let fault = CancelTransactions::next(3, "ThrottlingError");
    let t = TestStore::with_fault(fault.clone()).await;
    let api = app(&t, Mount::All);
    let a = call(
        &api,
        request("POST", "/streams/Order-1/events", Some(TWO_EVENTS)),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(fault.cancelled(), 3);
    assert_eq!(t.item_count().await, 2);
}

#[tokio::test]
async fn the_sequencer_backs_off_when_throttled_and_reports_unavailable_if_it_persists() {
    let t = TestStore::new().await;
    let s = stream("Order");
    t.store
        .append(
            &s,
            ExpectedVersion::NoStream,
            &AppendBatch::new(events(3)).unwrap(),
        )
        .await
        .unwrap();
    let hint = [StreamHint {
        stream: s.clone(),
        version: 3,
    }];

    // The sequencer's writes: its claim on the counter and the positions it hands out.
    let fault = Throttle::of(&["UpdateItem"]);
    fault.start();
    let throttled = TestStore::with_fault(fault.clone()).await;
    let sequencer = Sequencer::new(DynamoEventLog::new(throttled.client.clone(), &t.table));
    let err = sequencer.sequence(&hint).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    // The claim, tried three times by the SDK: nothing was written after it.
    assert_eq!(fault.throttled(), 3);
    assert_eq!(
        t.positions().await.iter().filter(|p| p.2.is_some()).count(),
        0
    );

    fault.stop();
    let report = sequencer.sequence(&hint).await.unwrap();
    assert_eq!(report.events, 3);
    let positions: Vec<Option<u64>> = t.positions().await.into_iter().map(|p| p.2).collect();
    assert_eq!(positions, [Some(1), Some(2), Some(3)]);
}

/// `make dev`'s path: one event source, opened before anything is appended, feeds the
/// sequencer while an append is refused with 409. The refused transaction must leave the
/// stream exactly as it was, and later appends must still reach the global order.
#[tokio::test]
async fn a_refused_multi_event_append_does_not_stop_the_global_order() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let sequencer = t.sequencer().await;
    let mut source = sequencer.local_source().await.unwrap();
    let x1 = r#"{"expectedVersion":"no_stream","events":[{"eventType":"A","data":1},{"eventType":"A","data":2}]}"#;
    let a = call(&api, request("POST", "/streams/Acc-x1/events", Some(x1))).await;
    assert_eq!(a.status, 201, "{}", a.text);
    drain(&mut source, &sequencer).await;

    let stale =
        r#"{"expectedVersion":1,"events":[{"eventType":"A","data":3},{"eventType":"A","data":4}]}"#;
    let a = call(&api, request("POST", "/streams/Acc-x1/events", Some(stale))).await;
    assert_eq!(a.status, 409, "{}", a.text);
    let x2 = r#"{"events":[{"eventType":"A","data":5}]}"#;
    let a = call(&api, request("POST", "/streams/Acc-x2/events", Some(x2))).await;
    assert_eq!(a.status, 201, "{}", a.text);
    drain(&mut source, &sequencer).await;

    let all = call(&api, request("GET", "/all/events", None)).await;
    let got: Vec<(String, u64, u64)> = all.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["streamId"].as_str().unwrap().to_owned(),
                e["version"].as_u64().unwrap(),
                e["globalPosition"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Acc-x1".to_owned(), 1, 1),
            ("Acc-x1".to_owned(), 2, 2),
            ("Acc-x2".to_owned(), 1, 3)
        ]
    );
    assert_eq!(all.json["next"], 4);
}

/// Feeds the sequencer from `source` until the stream holds nothing new.
async fn drain(source: &mut LocalEventSource, sequencer: &Sequencer) {
    while source.drain(&|e| sequencer.handle(e)).await.unwrap() > 0 {}
}

#[tokio::test]
async fn a_stream_id_without_a_category_is_refused_and_every_spelling_names_one_stream() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let body = r#"{"events":[{"eventType":"A","data":1}]}"#;
    for path in ["/streams/-x/events", "/streams/%2Dx/events"] {
        let a = call(&api, request("POST", path, Some(body))).await;
        assert_eq!(a.status, 400, "{path}: {}", a.text);
        assert_eq!(a.json["error"]["code"], "InvalidRequest");
        assert_eq!(a.json["error"]["field"], "streamId");
        assert_eq!(
            a.json["error"]["message"],
            "streamId: must not start with '-' (its category, the part before the first '-', would be empty)"
        );
    }
    assert_eq!(t.item_count().await, 0);

    // Two spellings, one stream, always reported by its decoded name.
    let a = call(
        &api,
        request("POST", "/streams/Account-42/events", Some(body)),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = call(
        &api,
        request("POST", "/streams/%41ccount%2D42/events", Some(body)),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json["streamId"], "Account-42");
    assert_eq!(a.json["fromVersion"], 2);
    let a = call(&api, request("GET", "/streams/%41ccount-42", None)).await;
    assert_eq!(
        a.json,
        serde_json::json!({"streamId": "Account-42", "category": "Account", "version": 2})
    );
}

/// A client retries a command whose first attempt landed but whose answer it never got.
#[tokio::test]
async fn a_retried_command_with_an_idempotency_key_is_applied_once() {
    type Accounts = Repository<BankAccount, DynamoEventLog>;
    let lose = LoseWriteAnswers::every(1);
    let flaky = TestStore::losing_answers_without_retries(lose.clone()).await;
    let healthy = EventStore::new(DynamoEventLog::new(
        Client::new(&sdk_config().await),
        flaky.table.clone(),
    ));
    let (first_try, retry) = (
        Accounts::new(flaky.store.clone()),
        Accounts::new(healthy.clone()),
    );
    let id = uuid::Uuid::new_v4().simple().to_string();
    let open = AccountCommand::Open {
        owner: "ada".into(),
        initial_deposit: 100,
    };
    retry
        .execute(&id, &open, &CommandContext::default())
        .await
        .unwrap();
    let deposit = AccountCommand::Deposit {
        amount: 50,
        reference: None,
    };
    let keyed = CommandContext {
        idempotency_key: Some("request-7".into()),
        ..CommandContext::default()
    };

    let failed = first_try.execute(&id, &deposit, &keyed).await;
    assert!(
        matches!(
            failed,
            Err(CommandError::Store(StoreError::Unavailable { .. }))
        ),
        "{failed:?}"
    );
    assert_eq!(lose.lost(), 1);
    let stored = healthy
        .read_stream(&Accounts::stream_id(&id).unwrap(), StreamRead::default())
        .await
        .unwrap()
        .events;
    assert_eq!(stored.len(), 2, "the lost attempt did land");

    let done = retry.execute(&id, &deposit, &keyed).await.unwrap();
    assert_eq!(done.version, 2);
    assert_eq!(done.state.balance, 150);
    assert_eq!(done.event_ids, [stored[1].event_id]);
    // And again, from a third attempt: still once.
    let again = retry.execute(&id, &deposit, &keyed).await.unwrap();
    assert_eq!(
        (again.version, again.event_ids),
        (2, vec![stored[1].event_id])
    );
    let loaded = retry.load(&id).await.unwrap();
    assert_eq!((loaded.version, loaded.state.balance), (2, 150));
    assert_eq!(
        stored[1].metadata.as_json(),
        r#"{"idempotencyKey":"request-7"}"#
    );

    // Without a key the same retry is a second deposit: that is what the key is for.
    let unkeyed = CommandContext::default();
    assert!(first_try.execute(&id, &deposit, &unkeyed).await.is_err());
    let twice = retry.execute(&id, &deposit, &unkeyed).await.unwrap();
    assert_eq!((twice.version, twice.state.balance), (4, 250));
}

/// The sequencer is throttled past the event source's retries, so the source gives up on
/// the batch and, as the template's mapping does, records it in the failed-batch queue; the
/// streams get no further append. Once DynamoDB recovers, the sweep reads the batch's
/// records back from the table's stream and every event gets its position, without a Scan.
#[tokio::test]
async fn appends_stranded_by_an_outage_are_sequenced_by_the_sweep() {
    let t = TestStore::new().await;
    let api = app(&t, Mount::All);
    let fault = Throttle::of(&["UpdateItem"]);
    fault.start();
    let throttled = TestStore::with_fault(fault.clone()).await;
    let queue = t.failed_batches().await;
    let sequencer = Sequencer::new(DynamoEventLog::new(throttled.client.clone(), &t.table))
        .with_failed_batches(Some(queue.clone()));
    let mut source = sequencer.local_source().await.unwrap();

    for (stream, body) in [
        (
            "Acc-s1",
            r#"{"events":[{"eventType":"A","data":1},{"eventType":"A","data":2}]}"#,
        ),
        ("Acc-s2", r#"{"events":[{"eventType":"B","data":3}]}"#),
        (
            "Acc-s3",
            r#"{"events":[{"eventType":"A","data":4},{"eventType":"B","data":5},{"eventType":"A","data":6}]}"#,
        ),
    ] {
        let a = call(
            &api,
            request("POST", &format!("/streams/{stream}/events"), Some(body)),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    drain(&mut source, &sequencer).await;
    assert!(fault.throttled() > 0);
    assert!(
        t.positions().await.iter().all(|p| p.2.is_none()),
        "nothing sequenced while throttled"
    );

    fault.stop();
    let swept = sequencer.sweep().await.unwrap();
    assert_eq!(
        (
            swept.batches,
            swept.unreplayable,
            swept.streams,
            swept.events
        ),
        (1, 0, 3, 6)
    );
    eventstore_tests::assert_dense_and_in_stream_order(&t.positions().await);

    let all = call(&api, request("GET", "/all/events", None)).await;
    let data: Vec<i64> = all.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_i64().unwrap())
        .collect();
    let mut sorted = data.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 2, 3, 4, 5, 6]);
    assert_eq!(all.json["next"], 7);
    // The message was deleted once its batch was sequenced: a second sweep finds nothing.
    let idle = sequencer.sweep().await.unwrap();
    assert_eq!((idle.batches, idle.streams, idle.events), (0, 0, 0));

    // A batch whose records are gone from the stream (expired after 24 hours): counted as
    // unreplayable, and its message stays in the queue for the operator.
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let expired = eventstore_dynamodb::trigger::FailedBatches::new(
        aws_sdk_sqs::Client::new(&config),
        queue.queue_url(),
        eventstore_tests::TrimmedStream::client().await,
    );
    let late = Sequencer::new(t.store.log().clone()).with_failed_batches(Some(expired));
    queue
        .send(&t.failed_batch_of_every_insert().await)
        .await
        .unwrap();
    let lost = late.sweep().await.unwrap();
    assert_eq!((lost.batches, lost.unreplayable, lost.events), (0, 1, 0));
    assert_eq!(queued_messages(&queue).await, 1);
}

/// A replay that DynamoDB throttles past the SDK's retries fails the sweep (counted in
/// `SequencingFailures`, alarmed) and keeps its message; the next sweep, once DynamoDB has
/// recovered, replays it.
#[tokio::test]
async fn a_replay_throttled_past_its_retries_keeps_its_batch_for_the_next_sweep() {
    let t = TestStore::new().await;
    t.store
        .append(
            &stream("Acc"),
            ExpectedVersion::NoStream,
            &AppendBatch::new(events(3)).unwrap(),
        )
        .await
        .unwrap();
    let queue = t.failed_batches().await;
    queue
        .send(&t.failed_batch_of_every_insert().await)
        .await
        .unwrap();
    let fault = Throttle::of(&["UpdateItem"]);
    fault.start();
    let throttled = TestStore::with_fault(fault.clone()).await;
    let sequencer = Sequencer::new(DynamoEventLog::new(throttled.client.clone(), &t.table))
        .with_failed_batches(Some(queue.clone()));
    let err = sequencer.sweep().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(fault.throttled() > 0);
    assert!(t.positions().await.iter().all(|p| p.2.is_none()));
    assert_eq!(queued_messages(&queue).await, 1, "the message stays");

    // Two minutes later the message is visible again; here a receiver that does not wait
    // for its visibility timeout stands in for that: a fresh queue holding the same batch.
    fault.stop();
    let again = t.failed_batches_named("again").await;
    again
        .send(&t.failed_batch_of_every_insert().await)
        .await
        .unwrap();
    let recovered = sequencer
        .clone()
        .with_failed_batches(Some(again.clone()))
        .sweep()
        .await
        .unwrap();
    assert_eq!((recovered.batches, recovered.events), (1, 3));
    assert_eq!(queued_messages(&again).await, 0);
}

/// Messages in `queue`, visible or not.
async fn queued_messages(queue: &eventstore_dynamodb::trigger::FailedBatches) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let out = aws_sdk_sqs::Client::new(&config)
        .get_queue_attributes()
        .queue_url(queue.queue_url())
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    out.attributes()
        .map(|a| {
            a.values()
                .map(|v| v.parse::<u64>().unwrap_or(0))
                .sum::<u64>()
        })
        .unwrap_or(0)
}

/// The sequencer function takes both of its triggers' inputs: a real stream batch (from
/// `sam local generate-event`) and the schedule's sweep.
#[tokio::test]
async fn the_sequencer_function_answers_a_stream_batch_and_a_sweep() {
    use eventstore_dynamodb::trigger::{Invocation, SWEEP_INPUT};
    let t = TestStore::new().await;
    let sequencer = t.sequencer().await;
    let path = format!(
        "{}/fixtures/dynamodb/sequencer-batch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let batch: Invocation = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(matches!(batch, Invocation::Stream(_)));
    let answer = sequencer.invoke(batch).await.unwrap();
    assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));

    t.store
        .append(
            &stream("Acc"),
            ExpectedVersion::NoStream,
            &AppendBatch::new(events(2)).unwrap(),
        )
        .await
        .unwrap();
    let sequencer = sequencer.with_failed_batches(Some(t.failed_batches().await));
    let sweep: Invocation = serde_json::from_str(SWEEP_INPUT).unwrap();
    assert!(matches!(sweep, Invocation::Sweep { .. }));
    // Nothing was given up on: the append is the stream path's.
    let answer = sequencer.invoke(sweep).await.unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"batches": 0, "unreplayable": 0, "streams": 0, "events": 0})
    );
    // The mapping gave up on its batch; the schedule of an earlier version (which sent an
    // age) still sweeps.
    t.failed_batches()
        .await
        .send(&t.failed_batch_of_every_insert().await)
        .await
        .unwrap();
    let old: Invocation = serde_json::from_str(r#"{"sweep":{"olderThanSeconds":60}}"#).unwrap();
    let answer = sequencer.invoke(old).await.unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"batches": 1, "unreplayable": 0, "streams": 1, "events": 2})
    );
}

/// The projector meets the same throttled transactions: it backs off and resends, and if
/// throttling persists it reports `Unavailable` (its trigger retries) with its checkpoint
/// where it was; once DynamoDB recovers it catches up.
#[tokio::test]
async fn the_projector_backs_off_when_throttled_and_catches_up_after() {
    use bank_account::AccountBalances;
    use eventstore_dynamodb::ProjectionTables;
    let t = TestStore::new().await;
    t.append_sequenced(
        "Account-t1",
        vec![
            eventstore_tests::event("AccountOpened", r#"{"initialDeposit":5}"#),
            eventstore_tests::event("MoneyDeposited", r#"{"amount":7}"#),
        ],
    )
    .await;
    let reference = t.projector(eventstore_app::registry().projections).await;
    let tables = ProjectionTables {
        rows: format!("{}-rows", t.table),
        checkpoints: format!("{}-checkpoints", t.table),
    };
    let fault = CancelTransactions::always("ThrottlingError");
    let throttled = TestStore::with_fault(fault.clone()).await;
    let projector = eventstore_dynamodb::projector(
        DynamoEventLog::new(throttled.client.clone(), &t.table),
        tables,
        eventstore_app::registry().projections,
    );
    let err = projector
        .catch_up(&AccountBalances, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        fault.cancelled(),
        5,
        "each throttled commit is resent after a pause"
    );
    assert_eq!(
        reference
            .checkpoint("account-balances")
            .await
            .unwrap()
            .position,
        0
    );

    let brief = CancelTransactions::next(2, "ProvisionedThroughputExceeded");
    let flaky = TestStore::with_fault(brief.clone()).await;
    let projector = eventstore_dynamodb::projector(
        DynamoEventLog::new(flaky.client.clone(), &t.table),
        ProjectionTables {
            rows: format!("{}-rows", t.table),
            checkpoints: format!("{}-checkpoints", t.table),
        },
        eventstore_app::registry().projections,
    );
    projector.catch_up(&AccountBalances, None).await.unwrap();
    assert_eq!(brief.cancelled(), 2);
    assert_eq!(
        reference
            .checkpoint("account-balances")
            .await
            .unwrap()
            .position,
        2
    );
    let (rows, _) = reference
        .rows("account-balances", "t1", None, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].1["balance"], serde_json::json!(12));
}

/// A replay of parked events meets throttled transactions like the projector does: resent
/// after pauses, then `Unavailable` with the event still parked and the rows untouched; once
/// DynamoDB recovers the same replay applies it.
#[tokio::test]
async fn a_replay_under_persistent_throttling_is_unavailable_and_changes_nothing() {
    use bank_account::AccountBalances;
    let t = TestStore::new().await;
    // A deposit to an account not opened yet: parked after three attempts.
    t.append_sequenced(
        "Account-t2",
        vec![eventstore_tests::event("MoneyDeposited", r#"{"amount":7}"#)],
    )
    .await;
    let reference = t.projector(eventstore_app::registry().projections).await;
    for _ in 0..3 {
        reference.catch_up_all(None).await.unwrap();
    }
    t.store
        .append(
            &eventstore_core::StreamId::parse("Account-t2", "streamId").unwrap(),
            ExpectedVersion::Exact(1),
            &AppendBatch::new(vec![eventstore_tests::event(
                "AccountOpened",
                r#"{"initialDeposit":5}"#,
            )])
            .unwrap(),
        )
        .await
        .unwrap();
    t.sequence_all().await;
    reference.catch_up_all(None).await.unwrap();
    let on = |store: &TestStore| {
        eventstore_dynamodb::projector(
            DynamoEventLog::new(store.client.clone(), &t.table),
            eventstore_dynamodb::ProjectionTables {
                rows: format!("{}-rows", t.table),
                checkpoints: format!("{}-checkpoints", t.table),
            },
            eventstore_app::registry().projections,
        )
    };

    let fault = CancelTransactions::always("ThrottlingError");
    let throttled = TestStore::with_fault(fault.clone()).await;
    let err = on(&throttled)
        .replay_parked(&AccountBalances, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        fault.cancelled(),
        5,
        "the throttled commit is resent after pauses"
    );
    assert_eq!(reference.parked("account-balances").await.unwrap().len(), 1);
    let (rows, _) = reference
        .rows("account-balances", "t2", None, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].1["balance"], serde_json::json!(5));

    fault.recover();
    let replayed = on(&throttled)
        .replay_parked(&AccountBalances, None)
        .await
        .unwrap();
    assert_eq!((replayed.applied, replayed.failed), (vec![1], vec![]));
    let (rows, _) = reference
        .rows("account-balances", "t2", None, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].1["balance"], serde_json::json!(12));
    assert_eq!(
        reference
            .checkpoint("account-balances")
            .await
            .unwrap()
            .parked,
        0
    );
}

/// An app that loads, decides and saves itself gets the same protection from `save`.
#[tokio::test]
async fn save_with_an_idempotency_key_does_not_append_a_retried_decision_twice() {
    type Accounts = Repository<BankAccount, DynamoEventLog>;
    let t = TestStore::new().await;
    let repo = Accounts::new(t.store.clone());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let keyed = CommandContext {
        idempotency_key: Some("open-1".into()),
        ..CommandContext::default()
    };
    let opened = bank_account::AccountEvent::AccountOpened {
        owner: "ada".into(),
        initial_deposit: 10,
    };
    let first = repo
        .save(&id, 0, std::slice::from_ref(&opened), &keyed)
        .await
        .unwrap();
    assert!(first.created);
    // The answer was lost; the app reloads (now at version 1) and saves its decision again.
    let again = repo.save(&id, 1, &[opened], &keyed).await.unwrap();
    assert!(!again.created);
    assert_eq!((again.from_version, again.to_version), (1, 1));
    assert_eq!(again.event_ids, first.event_ids);
    assert_eq!(repo.load(&id).await.unwrap().version, 1);
}
