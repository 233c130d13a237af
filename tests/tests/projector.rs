//! The projector: exact read models, once and in order, whatever crashes, redeliveries and
//! races happen; poison events parked; the Lambda handler on real stream JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodb::types::AttributeValue;
use bank_account::AccountBalances;
use bank_account::{AccountCommand as C, BankAccount};
use eventstore_core::builtin::CategoryStreams;
use eventstore_core::{
    AppendBatch, CommandContext, EventType, ExpectedVersion, Projection, RecordedEvent, Repository,
    RowId, Rows, StreamId,
};
use eventstore_dynamodb::{DynamoEventLog, Projector, ProjectorTrigger};
use eventstore_tests::{event, TestStore};
use serde_json::{json, Value};

async fn run(t: &TestStore, id: &str, commands: &[C]) {
    let repo: Repository<BankAccount, DynamoEventLog> = Repository::new(t.store.clone());
    for c in commands {
        repo.execute(id, c, &CommandContext::default())
            .await
            .unwrap();
    }
}

fn open(amount: i64) -> C {
    C::Open {
        owner: "ada".into(),
        initial_deposit: amount,
    }
}

fn deposit(amount: i64) -> C {
    C::Deposit {
        amount,
        reference: None,
    }
}

/// The row of an account, with `lastActivity` checked against the stream's last event.
async fn balance(t: &TestStore, p: &Projector, id: &str) -> Value {
    let (rows, next) = p.rows("account-balances", id, None, 10).await.unwrap();
    assert_eq!((rows.len(), next), (1, None), "{rows:?}");
    let mut row = rows[0].1.clone();
    let stream = StreamId::parse(&format!("Account-{id}"), "s").unwrap();
    let last = t
        .store
        .read_stream(
            &stream,
            eventstore_core::StreamRead {
                from: None,
                direction: eventstore_core::Direction::Backward,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        row["lastActivity"],
        json!(last.events[0].created_at.to_string())
    );
    row.as_object_mut().unwrap().remove("lastActivity");
    row
}

#[tokio::test]
async fn account_balances_follow_a_scripted_history_exactly() {
    let t = TestStore::new().await;
    run(
        &t,
        "a",
        &[open(100), deposit(50), C::Withdraw { amount: 30 }],
    )
    .await;
    run(
        &t,
        "b",
        &[open(0), deposit(5), C::Withdraw { amount: 5 }, C::Close],
    )
    .await;
    run(&t, "a", &[deposit(1)]).await;
    t.sequence_all().await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    let report = p.catch_up(&AccountBalances, None).await.unwrap();
    assert_eq!(report.applied, 8);
    assert_eq!(
        balance(&t, &p, "a").await,
        json!({"balance": 121, "transactionCount": 4, "isOpen": true})
    );
    assert_eq!(
        balance(&t, &p, "b").await,
        json!({"balance": 0, "transactionCount": 3, "isOpen": false})
    );
    assert_eq!(p.checkpoint("account-balances").await.unwrap().position, 8);
    let (rows, _) = p
        .rows("account-balances", "nobody", None, 10)
        .await
        .unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn a_batch_writes_each_row_once() {
    let t = TestStore::new().await;
    run(&t, "c", &[open(1)]).await;
    run(&t, "c", &(0..10).map(|_| deposit(1)).collect::<Vec<_>>()).await;
    t.sequence_all().await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    t.requests.take();
    let report = p.catch_up(&AccountBalances, None).await.unwrap();
    // 11 events on one row: one transaction, one row write (plus the checkpoint).
    assert_eq!(
        (report.applied, report.rows_written, report.transactions),
        (11, 1, 1)
    );
    assert_eq!(
        t.requests.take().get("TransactWriteItems").copied(),
        Some(1)
    );
    assert_eq!(
        balance(&t, &p, "c").await,
        json!({"balance": 11, "transactionCount": 11, "isOpen": true})
    );
}

#[tokio::test]
async fn a_projector_killed_at_any_point_and_run_again_stays_exact() {
    let t = TestStore::new().await;
    for id in ["k1", "k2", "k3"] {
        run(
            &t,
            id,
            &[open(10), deposit(1), deposit(2), C::Withdraw { amount: 3 }],
        )
        .await;
    }
    t.sequence_all().await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    // Cut each run short after a growing delay: the process dies wherever it is, before,
    // during or after its transaction; the next run picks up from the checkpoint.
    for ms in [1u64, 3, 5, 8, 12, 20, 30] {
        let _ = tokio::time::timeout(
            Duration::from_millis(ms),
            p.catch_up(&AccountBalances, None),
        )
        .await;
    }
    p.catch_up(&AccountBalances, None).await.unwrap();
    for id in ["k1", "k2", "k3"] {
        assert_eq!(
            balance(&t, &p, id).await,
            json!({"balance": 10, "transactionCount": 4, "isOpen": true})
        );
    }
    assert_eq!(p.checkpoint("account-balances").await.unwrap().position, 12);
}

#[tokio::test]
async fn a_lost_answer_to_the_commit_changes_nothing_twice() {
    let lose = eventstore_tests::LoseWriteAnswers::every(1);
    let t = TestStore::losing_answers(lose.clone()).await;
    run(&t, "l", &[open(10), deposit(5)]).await;
    t.sequence_all().await;
    // The projector's client loses the answer to its first write: the transaction landed,
    // the SDK retries it, the retry's condition fails, and the projector re-reads.
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    let before = lose.lost();
    p.catch_up(&AccountBalances, None).await.unwrap();
    assert!(lose.lost() > before, "no answer was lost");
    assert_eq!(
        balance(&t, &p, "l").await,
        json!({"balance": 15, "transactionCount": 2, "isOpen": true})
    );
}

#[tokio::test]
async fn two_projectors_racing_apply_each_event_once() {
    let t = TestStore::new().await;
    for i in 0..6 {
        run(&t, &format!("r{i}"), &[open(i), deposit(10), deposit(20)]).await;
    }
    t.sequence_all().await;
    let one = t.projector(vec![Arc::new(AccountBalances)]).await;
    let two = one.clone();
    let (a, b) = tokio::join!(
        one.catch_up(&AccountBalances, None),
        two.catch_up(&AccountBalances, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.applied + b.applied, 18, "{a:?} {b:?}");
    for i in 0..6 {
        assert_eq!(
            balance(&t, &one, &format!("r{i}")).await,
            json!({"balance": i + 30, "transactionCount": 3, "isOpen": true})
        );
    }
}

/// Counts events per stream, and cannot apply events of type `Poison`.
struct Counting;

impl Projection for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn handles(&self, _: &EventType) -> bool {
        true
    }
    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        vec![RowId::single(event.stream_id.as_str())]
    }
    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        if event.event_type.as_str() == "Poison" {
            return Err("cannot digest poison".into());
        }
        let row = RowId::single(event.stream_id.as_str());
        let n = rows.get(&row).and_then(Value::as_u64).unwrap_or(0);
        rows.put(row, json!(n + 1));
        Ok(())
    }
}

#[tokio::test]
async fn a_poison_event_is_retried_then_parked_and_the_projection_moves_on() {
    let t = TestStore::new().await;
    t.append_sequenced(
        "Feed-1",
        vec![
            event("Fine", "{}"),
            event("Poison", "{}"),
            event("Fine", "{}"),
        ],
    )
    .await;
    let p = t.projector(vec![Arc::new(Counting)]).await;
    for attempt in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let err = p.catch_up(&Counting, None).await.unwrap_err();
        assert!(err.to_string().contains("cannot digest poison"), "{err}");
        let cp = p.checkpoint("counting").await.unwrap();
        assert_eq!((cp.position, cp.failures, cp.parked), (1, attempt, 0));
    }
    let report = p.catch_up(&Counting, None).await.unwrap();
    assert_eq!((report.parked, report.applied), (1, 1));
    let cp = p.checkpoint("counting").await.unwrap();
    assert_eq!((cp.position, cp.failures, cp.parked), (3, 0, 1));
    let parked = p.parked("counting").await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, 2);
    assert_eq!(parked[0].error, "cannot digest poison");
    let (rows, _) = p.rows("counting", "Feed-1", None, 10).await.unwrap();
    assert_eq!(rows, vec![(String::new(), json!(2))]);
}

#[tokio::test]
async fn category_streams_lists_a_category_a_page_at_a_time() {
    let t = TestStore::new().await;
    for i in 0..5 {
        let s = StreamId::parse(&format!("Cart-{i}"), "s").unwrap();
        let n = 1 + i % 2;
        let batch = AppendBatch::new((0..n).map(|_| event("Added", "{}")).collect()).unwrap();
        t.store
            .append(&s, ExpectedVersion::Any, &batch)
            .await
            .unwrap();
    }
    t.sequence_all().await;
    let p = t.projector(vec![Arc::new(CategoryStreams)]).await;
    p.catch_up(&CategoryStreams, None).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (rows, next) = p
            .rows("category-streams", "Cart", after.as_deref(), 2)
            .await
            .unwrap();
        assert!(rows.len() <= 2);
        seen.extend(
            rows.iter()
                .map(|(item, v)| (item.clone(), v["version"].clone())),
        );
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let want: Vec<(String, Value)> = (0..5)
        .map(|i| (format!("Cart-{i}"), json!(1 + i % 2)))
        .collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn the_handler_takes_a_real_counter_stream_event_and_upcasts_before_projecting() {
    let t = TestStore::new().await;
    let raw = |ty: &str, schema: u32, data: &str| {
        let mut e = event(ty, data);
        e.schema_version = schema;
        e
    };
    t.append_sequenced(
        "Account-u",
        vec![
            raw("AccountOpened", 1, r#"{"owner":"ada","initialDeposit":1}"#),
            raw("MoneyDeposited", 1, r#"{"value":10}"#),
            raw("MoneyDeposited", 2, r#"{"amount":100}"#),
            raw("MoneyDeposited", 3, r#"{"amount":1000,"reference":null}"#),
            raw("MoneyWithdrawn", 1, r#"{"amount":11}"#),
        ],
    )
    .await;
    let p = t
        .projector(vec![Arc::new(AccountBalances)])
        .await
        .with_upcasters(bank_account::upcasters());
    let path = format!(
        "{}/fixtures/dynamodb/projector-batch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let fixture: Event = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // The records say the log reaches 2, 5 and 3: the projector goes to 5.
    let response = p.handle(fixture).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(p.checkpoint("account-balances").await.unwrap().position, 5);
    assert_eq!(
        balance(&t, &p, "u").await,
        json!({"balance": 1100, "transactionCount": 5, "isOpen": true})
    );
}

#[tokio::test]
async fn a_rebuild_equals_the_live_projection_even_while_appends_go_on() {
    let t = std::sync::Arc::new(TestStore::new().await);
    for i in 0..4 {
        run(
            &t,
            &format!("b{i}"),
            &[open(100), deposit(i + 1), C::Withdraw { amount: 1 }],
        )
        .await;
    }
    t.sequence_all().await;
    let live = t.projector(vec![Arc::new(AccountBalances)]).await;
    live.catch_up(&AccountBalances, None).await.unwrap();
    assert_eq!(
        live.checkpoint("account-balances")
            .await
            .unwrap()
            .generation,
        1
    );

    // Appends, sequencing and the live projector go on while the rebuild runs.
    let writer = {
        let (t, live) = (t.clone(), live.clone());
        tokio::spawn(async move {
            for round in 0..5 {
                run(&t, &format!("b{}", round % 4), &[deposit(10)]).await;
                run(&t, &format!("new{round}"), &[open(round)]).await;
                t.sequence_all().await;
                live.catch_up(&AccountBalances, None).await.unwrap();
            }
        })
    };
    let mut steps = Vec::new();
    let rebuilt = live
        .rebuild(&AccountBalances, |at, head| steps.push((at, head)))
        .await
        .unwrap();
    writer.await.unwrap();
    live.catch_up(&AccountBalances, None).await.unwrap();
    assert_eq!(rebuilt.generation, 2);
    assert!(
        steps.last().is_some_and(|(at, head)| at == head),
        "{steps:?}"
    );
    let after = live.checkpoint("account-balances").await.unwrap();
    assert_eq!(
        (after.generation, after.position),
        (2, live.head().await.unwrap())
    );

    // The reference: the same projection from scratch, in tables of its own.
    let fresh_tables = eventstore_dynamodb::ProjectionTables {
        rows: format!("{}-ref-rows", t.table),
        checkpoints: format!("{}-ref-checkpoints", t.table),
    };
    for table in [&fresh_tables.rows, &fresh_tables.checkpoints] {
        eventstore_dynamodb::create_key_value_table(&t.client, table)
            .await
            .unwrap();
    }
    let reference = eventstore_dynamodb::projector(
        t.store.log().clone(),
        fresh_tables,
        vec![Arc::new(AccountBalances)],
    );
    reference.catch_up(&AccountBalances, None).await.unwrap();
    let mut ids: Vec<String> = (0..4).map(|i| format!("b{i}")).collect();
    ids.extend((0..5).map(|i| format!("new{i}")));
    for id in ids {
        let (got, _) = live.rows("account-balances", &id, None, 10).await.unwrap();
        let (want, _) = reference
            .rows("account-balances", &id, None, 10)
            .await
            .unwrap();
        assert_eq!(got, want, "{id}");
        assert_eq!(got.len(), 1, "{id}");
    }
}

#[tokio::test]
async fn an_event_that_cannot_be_upcast_is_parked_like_one_that_cannot_be_applied() {
    let t = TestStore::new().await;
    let mut broken = event("MoneyDeposited", r#"{"nothing":1}"#);
    broken.schema_version = 1;
    t.append_sequenced(
        "Account-x",
        vec![
            event("AccountOpened", r#"{"initialDeposit":5}"#),
            broken,
            event("MoneyWithdrawn", r#"{"amount":2}"#),
        ],
    )
    .await;
    let p = t
        .projector(vec![Arc::new(AccountBalances)])
        .await
        .with_upcasters(bank_account::upcasters());
    for _ in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let err = p.catch_up(&AccountBalances, None).await.unwrap_err();
        assert!(
            err.to_string().contains("v1 MoneyDeposited without value"),
            "{err}"
        );
    }
    let report = p.catch_up(&AccountBalances, None).await.unwrap();
    assert_eq!(report.parked, 1);
    assert_eq!(p.parked("account-balances").await.unwrap()[0].position, 2);
    assert_eq!(
        balance(&t, &p, "x").await,
        json!({"balance": 3, "transactionCount": 2, "isOpen": true})
    );
}

#[tokio::test]
async fn a_deposit_that_would_overflow_a_balance_is_parked_and_the_account_goes_on() {
    let t = TestStore::new().await;
    t.append_sequenced(
        "Account-o",
        vec![
            event(
                "AccountOpened",
                &format!(r#"{{"initialDeposit":{}}}"#, i64::MAX - 1),
            ),
            event("MoneyDeposited", r#"{"amount":2}"#),
            event("MoneyWithdrawn", r#"{"amount":5}"#),
        ],
    )
    .await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    for _ in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let err = p.catch_up(&AccountBalances, None).await.unwrap_err();
        assert!(err.to_string().contains("would overflow"), "{err}");
    }
    let report = p.catch_up(&AccountBalances, None).await.unwrap();
    assert_eq!((report.parked, report.applied), (1, 1));
    let parked = p.parked("account-balances").await.unwrap();
    assert_eq!(
        parked
            .iter()
            .map(|p| (p.position, p.error.as_str()))
            .collect::<Vec<_>>(),
        vec![(
            2,
            format!(
                "MoneyDeposited of 2 on account o would overflow its balance of {}",
                i64::MAX - 1
            )
            .as_str()
        )]
    );
    assert_eq!(
        balance(&t, &p, "o").await,
        json!({"balance": i64::MAX - 6, "transactionCount": 2, "isOpen": true})
    );
}

#[tokio::test]
async fn a_lost_answer_to_counting_a_failure_counts_it_once() {
    let lose = eventstore_tests::LoseWriteAnswers::every(1);
    let t = TestStore::losing_answers(lose.clone()).await;
    t.append_sequenced(
        "Feed-1",
        vec![
            event("Fine", "{}"),
            event("Poison", "{}"),
            event("Fine", "{}"),
        ],
    )
    .await;
    let p = t.projector(vec![Arc::new(Counting)]).await;
    // Every write's first answer is lost: the failure is counted, the SDK sends the count
    // again, its condition fails. That is still one failed attempt, not two.
    for attempt in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let before = lose.lost();
        let err = p.catch_up(&Counting, None).await.unwrap_err();
        assert!(lose.lost() > before, "no answer was lost");
        assert!(err.to_string().contains("cannot digest poison"), "{err}");
        let cp = p.checkpoint("counting").await.unwrap();
        assert_eq!((cp.position, cp.failures, cp.parked), (1, attempt, 0));
    }
    p.catch_up(&Counting, None).await.unwrap();
    let cp = p.checkpoint("counting").await.unwrap();
    assert_eq!((cp.position, cp.failures, cp.parked), (3, 0, 1));
    let parked = p.parked("counting").await.unwrap();
    assert_eq!(
        parked.iter().map(|p| p.position).collect::<Vec<_>>(),
        vec![2]
    );
}

/// `Counting` fixed: it digests poison too.
struct Digesting;

impl Projection for Digesting {
    fn name(&self) -> &str {
        "counting"
    }
    fn handles(&self, _: &EventType) -> bool {
        true
    }
    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        vec![RowId::single(event.stream_id.as_str())]
    }
    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        let row = RowId::single(event.stream_id.as_str());
        let n = rows.get(&row).and_then(Value::as_u64).unwrap_or(0);
        rows.put(row, json!(n + 1));
        Ok(())
    }
}

#[tokio::test]
async fn a_rebuild_that_applies_a_parked_event_leaves_it_no_longer_listed() {
    let t = TestStore::new().await;
    t.append_sequenced(
        "Feed-1",
        vec![
            event("Fine", "{}"),
            event("Poison", "{}"),
            event("Fine", "{}"),
        ],
    )
    .await;
    let p = t.projector(vec![Arc::new(Counting)]).await;
    for _ in 1..eventstore_core::projection::POISON_ATTEMPTS {
        p.catch_up(&Counting, None).await.unwrap_err();
    }
    p.catch_up(&Counting, None).await.unwrap();
    assert_eq!(p.parked("counting").await.unwrap().len(), 1);
    // The projection is fixed and rebuilt: generation 2 applies the event generation 1
    // parked, so nothing is parked any more.
    let rebuilt = p.rebuild(&Digesting, |_, _| {}).await.unwrap();
    assert_eq!(
        (rebuilt.generation, rebuilt.position, rebuilt.parked),
        (2, 3, 0)
    );
    assert_eq!(p.parked("counting").await.unwrap(), vec![]);
    let (rows, _) = p.rows("counting", "Feed-1", None, 10).await.unwrap();
    assert_eq!(rows, vec![(String::new(), json!(3))]);
}

/// Another version of `counting`: digests poison, but cannot take `Late` events.
struct Picky;

impl Projection for Picky {
    fn name(&self) -> &str {
        "counting"
    }
    fn handles(&self, _: &EventType) -> bool {
        true
    }
    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        vec![RowId::single(event.stream_id.as_str())]
    }
    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        if event.event_type.as_str() == "Late" {
            return Err("cannot take late events".into());
        }
        Digesting.apply(event, rows)
    }
}

#[tokio::test]
async fn a_rebuild_parks_in_its_own_generation_and_readers_see_it_only_after_the_switch() {
    let t = TestStore::new().await;
    t.append_sequenced(
        "Feed-1",
        vec![
            event("Fine", "{}"),
            event("Poison", "{}"),
            event("Late", "{}"),
        ],
    )
    .await;
    let p = t.projector(vec![Arc::new(Counting)]).await;
    for _ in 1..eventstore_core::projection::POISON_ATTEMPTS {
        p.catch_up(&Counting, None).await.unwrap_err();
    }
    p.catch_up(&Counting, None).await.unwrap();
    let listed = |parked: Vec<eventstore_core::projection::Parked>| {
        parked
            .into_iter()
            .map(|p| (p.position, p.error))
            .collect::<Vec<_>>()
    };
    let live_parked = vec![(2, "cannot digest poison".to_owned())];
    assert_eq!(listed(p.parked("counting").await.unwrap()), live_parked);
    // A rebuild with another version fails on another event, and parks it on its third run.
    for _ in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let err = p.rebuild(&Picky, |_, _| {}).await.unwrap_err();
        assert!(err.to_string().contains("cannot take late events"), "{err}");
        assert_eq!(listed(p.parked("counting").await.unwrap()), live_parked);
    }
    let rebuilt = p.rebuild(&Picky, |_, _| {}).await.unwrap();
    assert_eq!((rebuilt.generation, rebuilt.parked), (2, 1));
    // Readers now see what generation 2 parked, and only that.
    assert_eq!(
        listed(p.parked("counting").await.unwrap()),
        vec![(3, "cannot take late events".to_owned())]
    );
}

/// Counts `Tallied` events in one row `total`; a `Sneaky` event writes that row without
/// declaring it (a bug in the projection).
struct Tally;

impl Projection for Tally {
    fn name(&self) -> &str {
        "tally"
    }
    fn handles(&self, _: &EventType) -> bool {
        true
    }
    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        match event.event_type.as_str() {
            "Tallied" => vec![RowId::single("total")],
            _ => vec![RowId::single(event.stream_id.as_str())],
        }
    }
    fn apply(&self, _: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        let total = RowId::single("total");
        let n = rows.get(&total).and_then(Value::as_u64).unwrap_or(0);
        rows.put(total, json!(n + 1));
        Ok(())
    }
}

#[tokio::test]
async fn a_row_written_but_not_declared_is_refused_and_never_overwrites_the_stored_row() {
    let t = TestStore::new().await;
    t.append_sequenced(
        "Feed-1",
        vec![event("Tallied", "{}"), event("Tallied", "{}")],
    )
    .await;
    let p = t.projector(vec![Arc::new(Tally)]).await;
    p.catch_up(&Tally, None).await.unwrap();
    t.append_sequenced(
        "Feed-2",
        vec![event("Sneaky", "{}"), event("Tallied", "{}")],
    )
    .await;
    let why = "apply wrote row total, which rows() did not declare for this event";
    for attempt in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let err = p.catch_up(&Tally, None).await.unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        let cp = p.checkpoint("tally").await.unwrap();
        assert_eq!((cp.position, cp.failures), (2, attempt));
        let (rows, _) = p.rows("tally", "total", None, 10).await.unwrap();
        assert_eq!(rows, vec![(String::new(), json!(2))]);
    }
    let report = p.catch_up(&Tally, None).await.unwrap();
    assert_eq!((report.parked, report.applied), (1, 1));
    let parked = p.parked("tally").await.unwrap();
    assert_eq!(
        parked
            .iter()
            .map(|p| (p.position, p.error.as_str()))
            .collect::<Vec<_>>(),
        vec![(3, why)]
    );
    let (rows, _) = p.rows("tally", "total", None, 10).await.unwrap();
    assert_eq!(rows, vec![(String::new(), json!(3))]);
    let (rows, _) = p.rows("tally", "Feed-2", None, 10).await.unwrap();
    assert_eq!(rows, vec![]);
}

/// Asserts the live `account-balances` rows of `s1` and `s2` after `opened_and_deposited`.
async fn assert_s1_s2(t: &TestStore, p: &Projector) {
    assert_eq!(
        balance(t, p, "s1").await,
        json!({"balance": 15, "transactionCount": 2, "isOpen": true})
    );
    assert_eq!(
        balance(t, p, "s2").await,
        json!({"balance": 7, "transactionCount": 1, "isOpen": true})
    );
    assert_eq!(p.parked("account-balances").await.unwrap(), vec![]);
}

async fn opened_and_deposited(t: &TestStore) {
    run(t, "s1", &[open(10), deposit(5)]).await;
    run(t, "s2", &[open(7)]).await;
    t.sequence_all().await;
}

#[tokio::test]
async fn a_rebuild_whose_switch_answer_is_lost_is_done_and_the_next_rebuild_works() {
    let lose = eventstore_tests::LoseWriteAnswers::every(1);
    let t = TestStore::losing_answers(lose.clone()).await;
    opened_and_deposited(&t).await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    p.catch_up(&AccountBalances, None).await.unwrap();
    // Every write's first answer is lost, the switch's too: it lands, the SDK's resend
    // fails its conditions, and the rebuild must see that it is done.
    let before = lose.lost();
    let rebuilt = p.rebuild(&AccountBalances, |_, _| {}).await.unwrap();
    assert!(lose.lost() > before, "no answer was lost");
    assert_eq!(
        (rebuilt.generation, rebuilt.position, rebuilt.parked),
        (2, 3, 0)
    );
    assert_s1_s2(&t, &p).await;
    let again = p.rebuild(&AccountBalances, |_, _| {}).await.unwrap();
    assert_eq!((again.generation, again.position, again.parked), (3, 3, 0));
    assert_s1_s2(&t, &p).await;
    p.catch_up(&AccountBalances, None).await.unwrap();
    let live = p.checkpoint("account-balances").await.unwrap();
    assert_eq!((live.generation, live.position, live.parked), (3, 3, 0));
}

#[tokio::test]
async fn two_rebuilds_racing_both_finish_on_one_new_generation() {
    let t = TestStore::new().await;
    opened_and_deposited(&t).await;
    for i in 0..30 {
        run(&t, &format!("x{i}"), &[open(i), deposit(1)]).await;
    }
    t.sequence_all().await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    p.catch_up(&AccountBalances, None).await.unwrap();
    let other = p.clone();
    let (a, b) = tokio::join!(
        p.rebuild(&AccountBalances, |_, _| {}),
        other.rebuild(&AccountBalances, |_, _| {})
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.generation, a.position), (2, 63), "{a:?}");
    assert_eq!((b.generation, b.position), (2, 63), "{b:?}");
    assert_s1_s2(&t, &p).await;
    for i in 0..30 {
        assert_eq!(
            balance(&t, &p, &format!("x{i}")).await,
            json!({"balance": i + 1, "transactionCount": 2, "isOpen": true})
        );
    }
    let again = p.rebuild(&AccountBalances, |_, _| {}).await.unwrap();
    assert_eq!((again.generation, again.parked), (3, 0));
    assert_s1_s2(&t, &p).await;
}

#[tokio::test]
async fn a_stale_rebuild_checkpoint_left_by_an_old_version_is_replaced_not_resumed() {
    let t = TestStore::new().await;
    opened_and_deposited(&t).await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    p.catch_up(&AccountBalances, None).await.unwrap();
    // What the old switch left after a lost answer: a rebuild checkpoint in the live
    // generation, past all events.
    t.client
        .put_item()
        .table_name(format!("{}-checkpoints", t.table))
        .item(
            "PK",
            AttributeValue::S("PROJECTION#account-balances#REBUILD".into()),
        )
        .item("SK", AttributeValue::S("CHECKPOINT".into()))
        .item("position", AttributeValue::N("3".into()))
        .item("generation", AttributeValue::N("1".into()))
        .item("parked", AttributeValue::N("0".into()))
        .item("failures", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    let rebuilt = p.rebuild(&AccountBalances, |_, _| {}).await.unwrap();
    assert_eq!(
        (rebuilt.generation, rebuilt.position, rebuilt.parked),
        (2, 3, 0)
    );
    assert_s1_s2(&t, &p).await;
}

/// Writes `rows` rows (default 1) under its stream, each a string of `size` bytes.
struct Ledger;

fn ledger_spec(event: &RecordedEvent) -> (usize, usize) {
    let data: Value = serde_json::from_str(event.data.as_json()).unwrap_or(Value::Null);
    let field = |k: &str, default: u64| data[k].as_u64().unwrap_or(default) as usize;
    (field("size", 1), field("rows", 1))
}

impl Projection for Ledger {
    fn name(&self) -> &str {
        "ledger"
    }
    fn handles(&self, _: &EventType) -> bool {
        true
    }
    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        let (_, rows) = ledger_spec(event);
        (0..rows)
            .map(|i| RowId::item(event.stream_id.as_str(), i.to_string()))
            .collect()
    }
    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        let (size, n) = ledger_spec(event);
        for i in 0..n {
            rows.put(
                RowId::item(event.stream_id.as_str(), i.to_string()),
                json!("x".repeat(size)),
            );
        }
        Ok(())
    }
}

fn sized(size: usize, rows: usize) -> eventstore_core::NewEvent {
    event("Sized", &format!(r#"{{"size":{size},"rows":{rows}}}"#))
}

/// The lengths of the `ledger` rows under `stream`.
async fn ledger_rows(p: &Projector, stream: &str) -> Vec<(String, usize)> {
    let (rows, _) = p.rows("ledger", stream, None, 200).await.unwrap();
    rows.into_iter()
        .map(|(item, v)| (item, v.as_str().map_or(0, str::len)))
        .collect()
}

#[tokio::test]
async fn steps_stay_within_the_transaction_limits_and_a_row_too_large_is_parked() {
    let limits = eventstore_tests::DynamoDbLimits::aws();
    let t = TestStore::with_fault(limits.clone()).await;
    // Twelve rows of 350,000 bytes (4.2 MB together, over the 4 MB a transaction holds),
    // then a row over the 400 KB an item holds, then one more.
    for i in 1..=12 {
        t.append_sequenced(&format!("L-{i}"), vec![sized(350_000, 1)])
            .await;
    }
    t.append_sequenced("Big-1", vec![sized(420_000, 1)]).await;
    t.append_sequenced("L-13", vec![sized(350_000, 1)]).await;
    let p = t.projector(vec![Arc::new(Ledger)]).await;
    let why = "row Big-1/0 would be 420046 bytes, over DynamoDB's 400 KB item limit";
    for attempt in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let err = p.catch_up(&Ledger, None).await.unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        let cp = p.checkpoint("ledger").await.unwrap();
        assert_eq!((cp.position, cp.failures), (12, attempt));
    }
    let report = p.catch_up(&Ledger, None).await.unwrap();
    assert_eq!((report.parked, report.applied), (1, 1));
    let cp = p.checkpoint("ledger").await.unwrap();
    assert_eq!((cp.position, cp.failures, cp.parked), (14, 0, 1));
    let parked = p.parked("ledger").await.unwrap();
    assert_eq!(
        parked
            .iter()
            .map(|p| (p.position, p.error.as_str()))
            .collect::<Vec<_>>(),
        vec![(13, why)]
    );
    for i in 1..=13 {
        assert_eq!(
            ledger_rows(&p, &format!("L-{i}")).await,
            vec![("0".to_owned(), 350_000)],
            "L-{i}"
        );
    }
    assert_eq!(ledger_rows(&p, "Big-1").await, vec![]);
    // The projector's own budget kept every transaction within DynamoDB's limits.
    assert_eq!(limits.refused(), 0);
}

#[tokio::test]
async fn a_step_dynamodb_refuses_for_size_shrinks_and_an_event_it_refuses_alone_is_parked() {
    // DynamoDB counting more than the projector's estimate: here a transaction holds 1 MB.
    let limits = eventstore_tests::DynamoDbLimits::aws().with_transaction_bytes(1_000_000);
    let t = TestStore::with_fault(limits.clone()).await;
    for i in 1..=6 {
        t.append_sequenced(&format!("L-{i}"), vec![sized(300_000, 1)])
            .await;
    }
    let p = t.projector(vec![Arc::new(Ledger)]).await;
    let report = p.catch_up(&Ledger, None).await.unwrap();
    // Six rows (1.8 MB) refused, three (0.9 MB) twice accepted.
    assert_eq!((report.applied, report.transactions), (6, 2));
    assert_eq!(limits.refused(), 1);
    for i in 1..=6 {
        assert_eq!(
            ledger_rows(&p, &format!("L-{i}")).await,
            vec![("0".to_owned(), 300_000)]
        );
    }
    // An event whose own four rows (1.2 MB) are refused is parked, the next one applied.
    t.append_sequenced("Fan-1", vec![sized(300_000, 4)]).await;
    t.append_sequenced("L-7", vec![sized(10, 1)]).await;
    let why = "DynamoDB refused the transaction writing its rows: ValidationException: Item size has exceeded the maximum allowed size";
    for attempt in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let err = p.catch_up(&Ledger, None).await.unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        let cp = p.checkpoint("ledger").await.unwrap();
        assert_eq!((cp.position, cp.failures), (6, attempt));
    }
    p.catch_up(&Ledger, None).await.unwrap();
    let cp = p.checkpoint("ledger").await.unwrap();
    assert_eq!((cp.position, cp.failures, cp.parked), (8, 0, 1));
    let parked = p.parked("ledger").await.unwrap();
    assert_eq!(
        parked
            .iter()
            .map(|p| (p.position, p.error.as_str()))
            .collect::<Vec<_>>(),
        vec![(7, why)]
    );
    assert_eq!(ledger_rows(&p, "Fan-1").await, vec![]);
    assert_eq!(ledger_rows(&p, "L-7").await, vec![("0".to_owned(), 10)]);
}

#[tokio::test]
async fn an_event_declaring_more_rows_than_a_transaction_holds_is_parked() {
    let limits = eventstore_tests::DynamoDbLimits::aws();
    let t = TestStore::with_fault(limits.clone()).await;
    t.append_sequenced("Fan-1", vec![sized(1, 120)]).await;
    t.append_sequenced("L-1", vec![sized(1, 99)]).await;
    let p = t.projector(vec![Arc::new(Ledger)]).await;
    let why = "the event declares 120 rows, more than the 99 one transaction can write";
    for attempt in 1..eventstore_core::projection::POISON_ATTEMPTS {
        let err = p.catch_up(&Ledger, None).await.unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        let cp = p.checkpoint("ledger").await.unwrap();
        assert_eq!((cp.position, cp.failures), (0, attempt));
    }
    p.catch_up(&Ledger, None).await.unwrap();
    let cp = p.checkpoint("ledger").await.unwrap();
    assert_eq!((cp.position, cp.parked), (2, 1));
    assert_eq!(p.parked("ledger").await.unwrap()[0].error, why);
    assert_eq!(ledger_rows(&p, "Fan-1").await, vec![]);
    assert_eq!(ledger_rows(&p, "L-1").await.len(), 99);
    assert_eq!(limits.refused(), 0);
}

#[tokio::test]
async fn a_projection_far_behind_does_not_starve_the_others_in_an_invocation() {
    let t = TestStore::new().await;
    for (stream, n) in [("Feed-1", 100), ("Feed-2", 100), ("Feed-3", 45)] {
        t.append_sequenced(stream, eventstore_tests::events(n))
            .await;
    }
    let near = t.projector(vec![Arc::new(CategoryStreams)]).await;
    near.catch_up(&CategoryStreams, None).await.unwrap();
    t.append_sequenced("Feed-4", eventstore_tests::events(5))
        .await;
    // `counting` is new, 250 events behind, and comes first; `category-streams` is 5
    // behind. An invocation whose time is up after its first round of steps (one step
    // each) still brings `category-streams` to the head.
    let p = eventstore_dynamodb::projector(
        t.store.log().clone(),
        eventstore_dynamodb::ProjectionTables {
            rows: format!("{}-rows", t.table),
            checkpoints: format!("{}-checkpoints", t.table),
        },
        vec![Arc::new(Counting), Arc::new(CategoryStreams)],
    )
    .with_invocation_budget(Duration::ZERO);
    let response = p
        .handle(eventstore_tests::counter_records(&[250]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let at = |name: &'static str| {
        let p = p.clone();
        async move { p.checkpoint(name).await.unwrap().position }
    };
    assert_eq!(
        (at("category-streams").await, at("counting").await),
        (250, 100)
    );
    // What is left is not lost: the scheduled trigger goes on, a round per invocation.
    p.invoke(eventstore_tests::scheduled_event()).await.unwrap();
    assert_eq!(at("counting").await, 200);
    p.invoke(eventstore_tests::scheduled_event()).await.unwrap();
    assert_eq!(at("counting").await, 250);
    let (rows, _) = p.rows("counting", "Feed-3", None, 10).await.unwrap();
    assert_eq!(rows, vec![(String::new(), json!(45))]);
}

#[tokio::test]
async fn a_lagging_index_does_not_fail_the_batch_and_the_schedule_catches_up_a_quiet_store() {
    let index = eventstore_tests::LaggingIndex::default();
    let t = TestStore::with_fault(index.clone()).await;
    run(&t, "g", &[open(5), deposit(1)]).await;
    t.sequence_all().await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    index.lag();
    let response = p
        .handle(eventstore_tests::counter_records(&[2]))
        .await
        .unwrap();
    assert!(index.hidden() > 0, "the index was not read");
    // Retrying the batch would not help once Lambda's retries run out: the batch is done,
    // and the projection stays behind for the scheduled trigger.
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(p.checkpoint("account-balances").await.unwrap().position, 0);
    index.catch_up();
    // No new events, so no new counter records: the schedule alone brings it to the head.
    p.invoke(eventstore_tests::scheduled_event()).await.unwrap();
    assert_eq!(p.checkpoint("account-balances").await.unwrap().position, 2);
    assert_eq!(
        balance(&t, &p, "g").await,
        json!({"balance": 6, "transactionCount": 2, "isOpen": true})
    );
}

#[tokio::test]
async fn the_projector_refuses_an_invocation_it_does_not_know() {
    let t = TestStore::new().await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    let err = p.invoke(json!({"hello": "world"})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "internal error: the projector was invoked with neither stream records nor a scheduled event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locally_a_projection_the_lagging_index_left_behind_reaches_the_head_without_new_events() {
    let index = eventstore_tests::LaggingIndex::default();
    let t = TestStore::with_fault(index.clone()).await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    index.lag();
    run(&t, "q", &[open(3), deposit(4)]).await;
    t.sequence_all().await;
    // As `make dev` runs it: the local event source and the timer.
    let local = tokio::spawn(p.clone().run_locally(Duration::from_millis(500)));
    for _ in 0..100 {
        if index.hidden() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(index.hidden() > 0, "the projector never read the index");
    // Longer than the local event source retries a failing batch: the counter's records
    // are spent while the index lags.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(p.checkpoint("account-balances").await.unwrap().position, 0);
    index.catch_up();
    let mut position = 0;
    for _ in 0..50 {
        position = p.checkpoint("account-balances").await.unwrap().position;
        if position == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    local.abort();
    assert_eq!(position, 2);
    assert_eq!(
        balance(&t, &p, "q").await,
        json!({"balance": 7, "transactionCount": 2, "isOpen": true})
    );
}

#[tokio::test]
async fn events_parked_before_generations_had_lists_are_listed_with_generation_1_only() {
    let t = TestStore::new().await;
    t.append_sequenced("Feed-1", vec![event("Fine", "{}")])
        .await;
    let p = t.projector(vec![Arc::new(Digesting)]).await;
    // An entry as earlier versions parked it.
    t.client
        .put_item()
        .table_name(format!("{}-checkpoints", t.table))
        .item("PK", AttributeValue::S("PARKED#counting".into()))
        .item("SK", AttributeValue::S(format!("{:020}", 7)))
        .item("eventId", AttributeValue::S("e-7".into()))
        .item("error", AttributeValue::S("old failure".into()))
        .send()
        .await
        .unwrap();
    let listed = |parked: Vec<eventstore_core::projection::Parked>| {
        parked
            .into_iter()
            .map(|p| (p.position, p.event_id, p.error))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(p.parked("counting").await.unwrap()),
        vec![(7, "e-7".to_owned(), "old failure".to_owned())]
    );
    p.catch_up(&Digesting, None).await.unwrap();
    p.rebuild(&Digesting, |_, _| {}).await.unwrap();
    assert_eq!(listed(p.parked("counting").await.unwrap()), vec![]);
}

#[tokio::test]
async fn a_projection_never_run_live_is_rebuilt_into_generation_2() {
    let t = TestStore::new().await;
    opened_and_deposited(&t).await;
    let p = t.projector(vec![Arc::new(AccountBalances)]).await;
    let rebuilt = p.rebuild(&AccountBalances, |_, _| {}).await.unwrap();
    assert_eq!(
        (rebuilt.generation, rebuilt.position, rebuilt.parked),
        (2, 3, 0)
    );
    assert_s1_s2(&t, &p).await;
}
