//! The DynamoDB requests each operation sends, counted on the wire by an SDK interceptor:
//! appends and reads, and the repository path (loads and commands, with and without a
//! snapshot). Run with `-- --nocapture` to see the tables; docs/limits.md quotes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bank_account::{upcasters, AccountCommand as C, AccountEvent, BankAccount};
use eventstore_core::limits::MAX_EVENTS_PER_APPEND;
use eventstore_core::{
    AppendBatch, CommandContext, ExpectedVersion, Repository, SnapshotMode, StreamRead,
};
use eventstore_dynamodb::DynamoEventLog;
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

type Accounts = Repository<BankAccount, DynamoEventLog>;

fn accounts(t: &TestStore) -> Accounts {
    Repository::new(t.store.clone()).with_upcasters(upcasters())
}

fn deposit(amount: i64, reference: Option<String>) -> C {
    C::Deposit { amount, reference }
}

fn open() -> C {
    C::Open {
        owner: "ada".into(),
        initial_deposit: 10,
    }
}

#[tokio::test]
async fn the_repository_path_costs_a_known_number_of_requests() {
    let t = TestStore::new().await;
    let repo = accounts(&t).with_snapshot_every(3);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut table = Vec::new();
    let mut check = |label: &str, got: BTreeMap<String, u32>, want: &[(&str, u32)]| {
        table.push(format!("{label:<58} {got:?}"));
        assert_eq!(got, counts(want), "{label}");
    };

    t.requests.take();
    repo.execute(&id, &open(), &CommandContext::default())
        .await
        .unwrap();
    check(
        "first command of a new aggregate",
        t.requests.take(),
        &[("Query", 1), ("PutItem", 1)],
    );
    repo.execute(&id, &deposit(1, None), &CommandContext::default())
        .await
        .unwrap();
    check(
        "command, no snapshot yet",
        t.requests.take(),
        &[("Query", 1), ("PutItem", 1)],
    );
    repo.execute(&id, &deposit(1, None), &CommandContext::default())
        .await
        .unwrap();
    check(
        "command that reaches SNAPSHOT_EVERY (stores the snapshot)",
        t.requests.take(),
        &[("Query", 1), ("PutItem", 2)],
    );
    // Right on the snapshot: the one Query read it and event 3, so the write is a put.
    repo.execute(&id, &deposit(1, None), &CommandContext::default())
        .await
        .unwrap();
    check(
        "command right after a snapshot",
        t.requests.take(),
        &[("Query", 1), ("PutItem", 1)],
    );
    repo.execute(&id, &deposit(1, None), &CommandContext::default())
        .await
        .unwrap();
    check(
        "command on a snapshot and a tail",
        t.requests.take(),
        &[("Query", 1), ("PutItem", 1)],
    );
    let loaded = repo.load(&id).await.unwrap();
    check("load with a snapshot", t.requests.take(), &[("Query", 1)]);
    assert_eq!(
        (loaded.version, loaded.snapshot_version, loaded.events_read),
        (5, Some(3), 2)
    );
    assert_eq!(loaded.state.balance, 14);

    // A snapshot further back than SNAPSHOT_EVERY events (say its write failed): the
    // first page stops short of it, and the events after it are read forward.
    let stale = accounts(&t).with_snapshot_every(2);
    let loaded = stale.load(&id).await.unwrap();
    check(
        "load, snapshot older than SNAPSHOT_EVERY events",
        t.requests.take(),
        &[("Query", 2)],
    );
    assert_eq!((loaded.version, loaded.snapshot_version), (5, Some(3)));

    // With an idempotency key, a look for an earlier attempt among the stream's last ids.
    let keyed = CommandContext {
        idempotency_key: Some("k-1".into()),
        ..CommandContext::default()
    };
    repo.execute(&id, &deposit(1, None), &keyed).await.unwrap();
    check(
        "command with an idempotency key",
        t.requests.take(),
        &[("Query", 2), ("PutItem", 2)],
    );

    // A decision the caller made on a version this call did not read: the write checks it.
    let decided = [AccountEvent::MoneyDeposited {
        amount: 1,
        reference: None,
    }];
    repo.save(&id, 6, &decided, &CommandContext::default())
        .await
        .unwrap();
    check(
        "save at a caller's version",
        t.requests.take(),
        &[("TransactWriteItems", 1)],
    );
    println!(
        "requests sent per repository operation:\n{}",
        table.join("\n")
    );
}

#[tokio::test]
async fn a_full_load_is_one_query_per_megabyte_of_events() {
    let t = TestStore::new().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let stream = Accounts::stream_id(&id).unwrap();
    let mut history = vec![AccountEvent::AccountOpened {
        owner: "ada".into(),
        initial_deposit: 0,
    }];
    history.extend((1..2000).map(|_| AccountEvent::MoneyDeposited {
        amount: 1,
        reference: None,
    }));
    t.append_domain_events(&stream, &history).await;
    let plain = accounts(&t).with_snapshot_mode(SnapshotMode::Off);
    t.requests.take();
    let loaded = plain.load(&id).await.unwrap();
    assert_eq!((loaded.version, loaded.events_read), (2000, 2000));
    assert_eq!(
        t.requests.take(),
        counts(&[("Query", 1)]),
        "2,000 small events are one page"
    );
    // With snapshots on but none stored, the load first looks back for one (a Query of
    // SNAPSHOT_EVERY + 1 items), then for one stored under the old key, then reads forward.
    let loaded = accounts(&t).load(&id).await.unwrap();
    assert_eq!((loaded.version, loaded.snapshot_version), (2000, None));
    assert_eq!(t.requests.take(), counts(&[("Query", 2), ("GetItem", 1)]));

    // Five events of 250 KB: 1.2 MB, two pages.
    let big = Accounts::stream_id(&uuid::Uuid::new_v4().simple().to_string()).unwrap();
    let mut history = vec![AccountEvent::AccountOpened {
        owner: "ada".into(),
        initial_deposit: 0,
    }];
    history.extend((0..5).map(|_| AccountEvent::MoneyDeposited {
        amount: 1,
        reference: Some("r".repeat(250 * 1024)),
    }));
    t.append_domain_events(&big, &history).await;
    t.requests.take();
    let id = big.as_str().strip_prefix("Account-").unwrap();
    let loaded = plain.load(id).await.unwrap();
    assert_eq!(loaded.version, 6);
    assert_eq!(t.requests.take(), counts(&[("Query", 2)]));
}
