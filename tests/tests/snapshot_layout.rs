//! Snapshots in the stream's partition: the item after the events serves loads, a broken one
//! or a stray copy never blocks an aggregate, snapshots stored by earlier versions under the
//! old key still serve loads, and a save never leaves a gap. (What loads and commands cost
//! on the wire is in `request_costs.rs`.)
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

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn deposit(amount: i64, reference: Option<String>) -> C {
    C::Deposit { amount, reference }
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
    repo.execute(&id, &open, &CommandContext::default())
        .await
        .unwrap();
    let deposit = [AccountEvent::MoneyDeposited {
        amount: 1,
        reference: None,
    }];
    let err = repo
        .save(&id, 10, &deposit, &CommandContext::default())
        .await
        .unwrap_err();
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
async fn a_broken_snapshot_or_a_stray_copy_does_not_block_the_aggregate() {
    let t = TestStore::new().await;
    let repo = accounts(&t).with_snapshot_every(2);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let open = C::Open {
        owner: "ada".into(),
        initial_deposit: 1,
    };
    repo.execute(&id, &open, &CommandContext::default())
        .await
        .unwrap();
    repo.execute(&id, &deposit(1, None), &CommandContext::default())
        .await
        .unwrap();
    let stream = Accounts::stream_id(&id).unwrap();
    use aws_sdk_dynamodb::types::AttributeValue as V;
    // What the previous release also wrote: a copy between the versions. Loads and event
    // reads pass over it.
    t.client
        .put_item()
        .table_name(&t.table)
        .item(keys::PK, V::S(keys::stream_pk(stream.as_str())))
        .item(keys::SK, V::S(format!("{}#SNAPSHOT", keys::version_sk(1))))
        .item("version", V::S("not a number".into()))
        .send()
        .await
        .unwrap();
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(
        (
            loaded.version,
            loaded.snapshot_version,
            loaded.state.balance
        ),
        (2, Some(2), 2)
    );
    let read = t
        .store
        .read_stream(&stream, eventstore_core::StreamRead::default())
        .await
        .unwrap();
    assert_eq!(
        read.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2]
    );
    t.client
        .put_item()
        .table_name(&t.table)
        .item(keys::PK, V::S(keys::stream_pk(stream.as_str())))
        .item(keys::SK, V::S(keys::SNAPSHOT_SK.into()))
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
    repo.execute(&id, &deposit(1, None), &CommandContext::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn snapshots_stored_under_the_old_key_still_serve_loads() {
    let t = TestStore::new().await;
    let repo = accounts(&t).with_snapshot_every(0);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let stream = Accounts::stream_id(&id).unwrap();
    let open = C::Open {
        owner: "ada".into(),
        initial_deposit: 0,
    };
    repo.execute(&id, &open, &CommandContext::default())
        .await
        .unwrap();
    // Events of 200 KB (versions 2 to 7): the stream's last 1 MB holds five of them.
    for _ in 0..6 {
        let reference = Some("r".repeat(200 * 1024));
        repo.execute(&id, &deposit(1, reference), &CommandContext::default())
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
    // Where earlier versions kept it: move the item to the old key.
    let pk = aws_sdk_dynamodb::types::AttributeValue::S(keys::stream_pk(stream.as_str()));
    let sk = |k: &str| aws_sdk_dynamodb::types::AttributeValue::S(k.into());
    let mut item = t
        .client
        .get_item()
        .table_name(&t.table)
        .key(keys::PK, pk.clone())
        .key(keys::SK, sk(keys::SNAPSHOT_SK))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.insert(keys::SK.into(), sk(keys::LEGACY_SNAPSHOT_SK));
    t.client
        .put_item()
        .table_name(&t.table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    t.client
        .delete_item()
        .table_name(&t.table)
        .key(keys::PK, pk)
        .key(keys::SK, sk(keys::SNAPSHOT_SK))
        .send()
        .await
        .unwrap();
    assert_eq!(
        t.store
            .get_snapshot(&stream)
            .await
            .unwrap()
            .map(|s| s.version),
        Some(3),
        "GET /streams/{{id}}/snapshot still finds it"
    );

    t.requests.take();
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(
        (loaded.version, loaded.snapshot_version, loaded.events_read),
        (7, Some(3), 4),
        "the old snapshot item, then the events after it"
    );
    assert_eq!(loaded.state, at_3.state);
    // The backward Query finds no snapshot after the events; then the old item; then the
    // events after it.
    assert_eq!(t.requests.take(), counts(&[("Query", 2), ("GetItem", 1)]));

    // The next snapshot is stored under the new key, and a newer one wins.
    let repo = accounts(&t).with_snapshot_every(4);
    repo.execute(&id, &deposit(1, None), &CommandContext::default())
        .await
        .unwrap();
    t.requests.take();
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!((loaded.snapshot_version, loaded.events_read), (Some(8), 0));
    assert_eq!(t.requests.take(), counts(&[("Query", 1)]));
    assert_eq!(
        t.store
            .get_snapshot(&stream)
            .await
            .unwrap()
            .map(|s| s.version),
        Some(8)
    );
}
