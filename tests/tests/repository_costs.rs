//! What the repository path costs on the wire: a load with a snapshot is one Query, a command
//! on a snapshotted aggregate one Query and one PutItem, a full load one Query per MB; and
//! snapshots stored before their copies existed still serve loads. Counted by the SDK
//! interceptor of `TestStore`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bank_account::{upcasters, AccountCommand as C, AccountEvent, BankAccount};
use eventstore_core::{CommandContext, Repository, SnapshotMode, SnapshotStore};
use eventstore_dynamodb::{keys, DynamoEventLog};
use eventstore_tests::TestStore;

type Accounts = Repository<BankAccount, DynamoEventLog>;

fn accounts(t: &TestStore) -> Accounts {
    Repository::new(t.store.clone()).with_upcasters(upcasters())
}

fn ctx() -> CommandContext {
    CommandContext {
        correlation_id: None,
        causation_id: None,
        idempotency_key: None,
    }
}

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn deposit(amount: i64, reference: Option<String>) -> C {
    C::Deposit { amount, reference }
}

#[tokio::test]
async fn a_command_on_a_snapshotted_aggregate_is_one_query_and_one_put() {
    let t = TestStore::new().await;
    let repo = accounts(&t).with_snapshot_every(3);
    let id = uuid::Uuid::new_v4().simple().to_string();

    t.requests.take();
    let open = C::Open {
        owner: "ada".into(),
        initial_deposit: 10,
    };
    repo.execute(&id, &open, &ctx()).await.unwrap();
    assert_eq!(
        t.requests.take(),
        counts(&[("Query", 1), ("PutItem", 1)]),
        "a new stream's first command: the load finds nothing, one conditional put"
    );
    // Versions 2 and 3: the command that reaches 3 also stores the snapshot (the item
    // and its copy: two more puts).
    repo.execute(&id, &deposit(1, None), &ctx()).await.unwrap();
    t.requests.take();
    repo.execute(&id, &deposit(1, None), &ctx()).await.unwrap();
    assert_eq!(t.requests.take(), counts(&[("Query", 1), ("PutItem", 3)]));

    // The load ends on the snapshot: nothing read event 3 itself, so the write checks it.
    repo.execute(&id, &deposit(1, None), &ctx()).await.unwrap();
    assert_eq!(
        t.requests.take(),
        counts(&[("Query", 1), ("TransactWriteItems", 1)])
    );
    repo.execute(&id, &deposit(1, None), &ctx()).await.unwrap();
    assert_eq!(
        t.requests.take(),
        counts(&[("Query", 1), ("PutItem", 1)]),
        "load (snapshot and the event after it in one Query) and one put, no transaction"
    );
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(t.requests.take(), counts(&[("Query", 1)]));
    assert_eq!(
        (loaded.version, loaded.snapshot_version, loaded.events_read),
        (5, Some(3), 2)
    );
    assert_eq!(loaded.state.balance, 14);
}

#[tokio::test]
async fn save_checks_a_version_it_did_not_read_and_never_leaves_a_gap() {
    let t = TestStore::new().await;
    let repo = accounts(&t);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let open = C::Open {
        owner: "ada".into(),
        initial_deposit: 1,
    };
    repo.execute(&id, &open, &ctx()).await.unwrap();
    let deposit = [AccountEvent::MoneyDeposited {
        amount: 1,
        reference: None,
    }];
    let err = repo.save(&id, 10, &deposit, &ctx()).await.unwrap_err();
    assert!(
        matches!(
            err,
            eventstore_core::SaveError::Conflict {
                loaded: 10,
                current: 1
            }
        ),
        "{err:?}"
    );
    let stream = Accounts::stream_id(&id).unwrap();
    let versions: Vec<String> = t
        .raw_items(&stream)
        .await
        .iter()
        .filter_map(|i| i.get("version").map(|v| v.as_n().unwrap().to_owned()))
        .collect();
    assert_eq!(versions, ["1"], "nothing written at 11");
}

#[tokio::test]
async fn a_broken_snapshot_copy_does_not_block_the_aggregate() {
    let t = TestStore::new().await;
    let repo = accounts(&t).with_snapshot_every(2);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let open = C::Open {
        owner: "ada".into(),
        initial_deposit: 1,
    };
    repo.execute(&id, &open, &ctx()).await.unwrap();
    repo.execute(&id, &deposit(1, None), &ctx()).await.unwrap();
    let stream = Accounts::stream_id(&id).unwrap();
    use aws_sdk_dynamodb::types::AttributeValue as V;
    t.client
        .put_item()
        .table_name(&t.table)
        .item(keys::PK, V::S(keys::stream_pk(stream.as_str())))
        .item(keys::SK, V::S(keys::snapshot_copy_sk(2)))
        .item("version", V::S("not a number".into()))
        .send()
        .await
        .unwrap();
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(
        (
            loaded.version,
            loaded.snapshot_version,
            loaded.events_read,
            loaded.state.balance
        ),
        (2, None, 2, 2)
    );
    repo.execute(&id, &deposit(1, None), &ctx()).await.unwrap();
}

#[tokio::test]
async fn a_full_load_is_one_query_per_megabyte_and_a_missing_snapshot_costs_two_more() {
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
    t.requests.take();
    let loaded = accounts(&t)
        .with_snapshot_mode(SnapshotMode::Off)
        .load(&id)
        .await
        .unwrap();
    assert_eq!((loaded.version, loaded.events_read), (2000, 2000));
    assert_eq!(
        t.requests.take(),
        counts(&[("Query", 1)]),
        "2,000 small events are one page"
    );
    // With snapshots on but none stored, the load first looks back for one (a Query of
    // SNAPSHOT_EVERY + 100 items), then for the snapshot item, then reads forward.
    let loaded = accounts(&t).load(&id).await.unwrap();
    assert_eq!((loaded.version, loaded.snapshot_version), (2000, None));
    assert_eq!(t.requests.take(), counts(&[("Query", 2), ("GetItem", 1)]));
}

#[tokio::test]
async fn snapshots_stored_before_their_copies_existed_still_serve_loads() {
    let t = TestStore::new().await;
    let repo = accounts(&t).with_snapshot_every(0);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let stream = Accounts::stream_id(&id).unwrap();
    let open = C::Open {
        owner: "ada".into(),
        initial_deposit: 0,
    };
    repo.execute(&id, &open, &ctx()).await.unwrap();
    // Events of 200 KB (versions 2 to 7): the stream's last 1 MB holds five of them.
    for _ in 0..6 {
        let reference = Some("r".repeat(200 * 1024));
        repo.execute(&id, &deposit(1, reference), &ctx())
            .await
            .unwrap();
    }
    // A snapshot at version 3 as earlier versions stored it: the item, no copy.
    let at_3 = accounts(&t)
        .with_snapshot_mode(SnapshotMode::Off)
        .load(&id)
        .await
        .unwrap();
    assert_eq!(at_3.version, 7);
    let mut state_at_3 = BankAccount::default();
    for event in [
        AccountEvent::AccountOpened {
            owner: "ada".into(),
            initial_deposit: 0,
        },
        AccountEvent::MoneyDeposited {
            amount: 1,
            reference: None,
        },
        AccountEvent::MoneyDeposited {
            amount: 1,
            reference: None,
        },
    ] {
        eventstore_core::Aggregate::apply(&mut state_at_3, &event);
    }
    let snapshot = eventstore_core::Snapshot {
        version: 3,
        schema_version: <BankAccount as eventstore_core::Aggregate>::STATE_SCHEMA_VERSION,
        state: eventstore_core::EventData::from_json(
            serde_json::to_string(&state_at_3).unwrap(),
            "state",
        )
        .unwrap(),
        created_at: eventstore_core::Timestamp::now(),
    };
    t.store
        .log()
        .save_snapshot(&stream, &snapshot)
        .await
        .unwrap();
    t.client
        .delete_item()
        .table_name(&t.table)
        .key(
            keys::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(keys::stream_pk(stream.as_str())),
        )
        .key(
            keys::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(keys::snapshot_copy_sk(3)),
        )
        .send()
        .await
        .unwrap();

    t.requests.take();
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(
        (loaded.version, loaded.snapshot_version, loaded.events_read),
        (7, Some(3), 4),
        "the old snapshot item, then the events after it"
    );
    assert_eq!(loaded.state, at_3.state);
    // The backward Query's first MB has no copy; then the item; then the events after it.
    assert_eq!(t.requests.take(), counts(&[("Query", 2), ("GetItem", 1)]));
}
