//! The repository on DynamoDB: load and save, concurrent commands, snapshots, and upcasting
//! on every read path, with the bank-account example.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bank_account::{upcasters, AccountCommand as C, AccountError, AccountEvent, BankAccount};
use eventstore_core::{
    Aggregate, AppendBatch, CommandContext, CommandError, EventData, EventType, ExpectedVersion,
    NewEvent, Repository, Snapshot, SnapshotMode, SnapshotStore, Timestamp,
};
use eventstore_dynamodb::DynamoEventLog;
use eventstore_http::Mount;
use eventstore_tests::http::{app, call, request};
use eventstore_tests::{s, TestStore};
use serde_json::json;

type Accounts = Repository<BankAccount, DynamoEventLog>;

fn accounts(t: &TestStore) -> Accounts {
    Repository::new(t.store.clone()).with_upcasters(upcasters())
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn ctx() -> CommandContext {
    CommandContext {
        correlation_id: Some("corr-1".into()),
        causation_id: Some("cause-1".into()),
        idempotency_key: None,
    }
}

fn deposit(amount: i64) -> C {
    C::Deposit {
        amount,
        reference: None,
    }
}

async fn open(repo: &Accounts, id: &str, amount: i64) {
    repo.execute(
        id,
        &C::Open {
            owner: "ada".into(),
            initial_deposit: amount,
        },
        &ctx(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn commands_load_decide_and_save_with_their_context_in_the_metadata() {
    let t = TestStore::new().await;
    let repo = accounts(&t);
    let id = new_id();
    open(&repo, &id, 100).await;
    let done = repo.execute(&id, &deposit(50), &ctx()).await.unwrap();
    assert_eq!(
        (done.version, done.state.balance, done.retries),
        (2, 150, 0)
    );
    let refused = repo
        .execute(&id, &C::Withdraw { amount: 500 }, &ctx())
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(AccountError::InsufficientFunds {
            balance: 150,
            requested: 500
        }))
    ));
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(
        (loaded.version, loaded.state.balance, loaded.events_read),
        (2, 150, 2)
    );

    let stream = Accounts::stream_id(&id).unwrap();
    let items = t.raw_items(&stream).await;
    let events: Vec<_> = items
        .iter()
        .filter(|i| s(i, "SK").starts_with("VERSION#") && i.contains_key("eventId"))
        .collect();
    assert_eq!(events.len(), 2, "a rejected command writes nothing");
    assert_eq!(s(events[1], "eventType"), "MoneyDeposited");
    assert_eq!(s(events[1], "data"), r#"{"amount":50,"reference":null}"#);
    assert_eq!(events[1]["schemaVersion"].as_n().unwrap(), "3");
    assert_eq!(
        s(events[1], "metadata"),
        r#"{"causationId":"cause-1","correlationId":"corr-1"}"#
    );
    // A new aggregate loads as the default state at version 0.
    let fresh = repo.load(&new_id()).await.unwrap();
    assert_eq!((fresh.version, fresh.state), (0, BankAccount::default()));
}

#[tokio::test]
async fn two_withdrawals_that_together_overdraw_cannot_both_win() {
    let t = TestStore::new().await;
    let (one, two) = (accounts(&t), accounts(&t));
    let id = new_id();
    open(&one, &id, 100).await;
    let (withdraw, context) = (C::Withdraw { amount: 70 }, ctx());
    let (a, b) = tokio::join!(
        one.execute(&id, &withdraw, &context),
        two.execute(&id, &withdraw, &context)
    );
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (a, b) => panic!("exactly one withdrawal must win: {a:?} {b:?}"),
    };
    assert_eq!((won.version, won.state.balance), (2, 30));
    assert!(
        matches!(
            lost,
            CommandError::Rejected(AccountError::InsufficientFunds {
                balance: 30,
                requested: 70
            })
        ),
        "{lost:?}"
    );
    let loaded = one.load(&id).await.unwrap();
    assert_eq!((loaded.version, loaded.state.balance), (2, 30));
}

#[tokio::test]
async fn a_snapshot_cuts_a_load_to_the_events_after_it() {
    let t = TestStore::new().await;
    let id = new_id();
    let stream = Accounts::stream_id(&id).unwrap();
    let mut history = vec![AccountEvent::AccountOpened {
        owner: "ada".into(),
        initial_deposit: 0,
    }];
    history.extend((1..299).map(|_| AccountEvent::MoneyDeposited {
        amount: 1,
        reference: None,
    }));
    t.append_domain_events(&stream, &history).await;

    let repo = accounts(&t).with_snapshot_every(100);
    // Event 300 crosses a multiple of 100: the command writes a snapshot at version 300.
    let done = repo.execute(&id, &deposit(1), &ctx()).await.unwrap();
    assert_eq!(done.version, 300);
    let snapshot = t.store.log().load_snapshot(&stream).await.unwrap().unwrap();
    assert_eq!((snapshot.version, snapshot.schema_version), (300, 1));
    for _ in 0..5 {
        repo.execute(&id, &deposit(1), &ctx()).await.unwrap();
    }
    // Still one snapshot, at 300: 305 crosses no multiple of 100.
    let snapshot = t.store.log().load_snapshot(&stream).await.unwrap().unwrap();
    assert_eq!(snapshot.version, 300);

    t.requests.take();
    let with = repo.load(&id).await.unwrap();
    let with_requests = t.requests.take();
    let without = accounts(&t)
        .with_snapshot_mode(SnapshotMode::Off)
        .load(&id)
        .await
        .unwrap();
    let without_requests = t.requests.take();
    assert_eq!(with.state, without.state);
    assert_eq!((with.version, with.state.balance), (305, 304));
    assert_eq!((with.events_read, with.snapshot_version), (5, Some(300)));
    assert_eq!((without.events_read, without.snapshot_version), (305, None));
    println!("load of 305 events: with snapshot {with_requests:?}, without {without_requests:?}");
    // One backward Query reads the 5 events and then the snapshot's copy.
    assert_eq!(with_requests, [("Query".to_owned(), 1)].into());
    assert_eq!(without_requests, [("Query".to_owned(), 1)].into());
}

#[tokio::test]
async fn an_unusable_snapshot_falls_back_to_a_full_rebuild() {
    let t = TestStore::new().await;
    let repo = accounts(&t);
    let id = new_id();
    open(&repo, &id, 10).await;
    repo.execute(&id, &deposit(5), &ctx()).await.unwrap();
    let stream = Accounts::stream_id(&id).unwrap();
    for (schema, state) in [
        (99, r#"{"anything":1}"#),
        (1, r#"{"balance":"not a number"}"#),
    ] {
        t.store
            .log()
            .save_snapshot(
                &stream,
                &Snapshot {
                    version: 2,
                    schema_version: schema,
                    state: EventData::from_json(state.into(), "state").unwrap(),
                    created_at: Timestamp::now(),
                },
            )
            .await
            .unwrap();
        let loaded = repo.load(&id).await.unwrap();
        assert_eq!(
            (
                loaded.state.balance,
                loaded.version,
                loaded.events_read,
                loaded.snapshot_version
            ),
            (15, 2, 2, None)
        );
    }
}

#[tokio::test]
async fn old_deposit_schemas_are_upcast_on_every_read_path_and_never_rewritten() {
    let t = TestStore::new().await;
    let id = new_id();
    let stream = Accounts::stream_id(&id).unwrap();
    let raw = |t: &str, schema: u32, data: &str| {
        let mut e = NewEvent::new(
            EventType::parse(t, "t").unwrap(),
            EventData::from_json(data.into(), "data").unwrap(),
        );
        e.schema_version = schema;
        e
    };
    let batch = AppendBatch::new(vec![
        raw("AccountOpened", 1, r#"{"owner":"ada","initialDeposit":1}"#),
        raw("MoneyDeposited", 1, r#"{"value":10}"#),
        raw("MoneyDeposited", 2, r#"{"amount":100}"#),
        raw("MoneyDeposited", 3, r#"{"amount":1000,"reference":"r"}"#),
    ])
    .unwrap();
    t.store
        .append(&stream, ExpectedVersion::NoStream, &batch)
        .await
        .unwrap();

    // The repository.
    let loaded = accounts(&t).load(&id).await.unwrap();
    assert_eq!((loaded.state.balance, loaded.state.transactions), (1111, 4));

    // The HTTP API, on request only.
    let api = app(&t, Mount::All);
    let data = |page: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["schemaVersion"].clone(), e["data"].clone()))
            .collect()
    };
    let upcast = vec![
        (json!(1), json!({"owner":"ada","initialDeposit":1})),
        (json!(3), json!({"amount":10,"reference":null})),
        (json!(3), json!({"amount":100,"reference":null})),
        (json!(3), json!({"amount":1000,"reference":"r"})),
    ];
    let stored = vec![
        (json!(1), json!({"owner":"ada","initialDeposit":1})),
        (json!(1), json!({"value":10})),
        (json!(2), json!({"amount":100})),
        (json!(3), json!({"amount":1000,"reference":"r"})),
    ];
    let api = api.with_upcasters(upcasters());
    let path = format!("/streams/{stream}/events");
    let a = call(&api, request("GET", &format!("{path}?upcast=true"), None)).await;
    assert_eq!(data(&a.json), upcast);
    let a = call(&api, request("GET", &path, None)).await;
    assert_eq!(data(&a.json), stored);
    let a = call(&api, request("GET", &format!("{path}?upcast=maybe"), None)).await;
    assert_eq!(
        (a.status, a.json["error"]["field"].clone()),
        (400, json!("upcast"))
    );
    t.sequence_all().await;
    let a = call(&api, request("GET", "/all/events?upcast=true", None)).await;
    assert_eq!(data(&a.json), upcast);
    let a = call(
        &api,
        request("GET", "/types/MoneyDeposited/events?upcast=true", None),
    )
    .await;
    assert_eq!(data(&a.json), upcast[1..].to_vec());

    // The stored items are untouched.
    let a = call(&api, request("GET", &path, None)).await;
    assert_eq!(data(&a.json), stored);
}

#[tokio::test]
async fn a_save_on_a_stale_load_is_a_typed_conflict_and_writes_nothing() {
    let t = TestStore::new().await;
    let repo = accounts(&t);
    let id = new_id();
    open(&repo, &id, 100).await;
    let stale = repo.load(&id).await.unwrap();
    repo.execute(&id, &deposit(1), &ctx()).await.unwrap();
    let events = stale.state.decide(&deposit(5)).unwrap();
    let err = repo
        .save(&id, stale.version, &events, &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            eventstore_core::SaveError::Conflict {
                loaded: 1,
                current: 2
            }
        ),
        "{err:?}"
    );
    let fresh = repo.load(&id).await.unwrap();
    assert_eq!((fresh.version, fresh.state.balance), (2, 101));
    let saved = repo
        .save(&id, fresh.version, &events, &ctx())
        .await
        .unwrap();
    assert_eq!((saved.from_version, saved.to_version), (3, 3));
}
