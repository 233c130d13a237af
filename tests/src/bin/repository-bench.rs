//! Measures what loading a long-lived aggregate costs with and without a snapshot: DynamoDB
//! requests (counted on the wire) and events read, for a bank account of N events (default
//! 10,000). Reports figures; asserts nothing. `make bench` runs it on the local DynamoDB.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use bank_account::{AccountCommand, AccountEvent, BankAccount};
use eventstore_core::{CommandContext, Repository, SnapshotMode};
use eventstore_dynamodb::DynamoEventLog;
use eventstore_tests::TestStore;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let t = TestStore::new().await;
    let id = "bench";
    let stream = Repository::<BankAccount, DynamoEventLog>::stream_id(id).unwrap();
    let mut history = vec![AccountEvent::AccountOpened {
        owner: "ada".into(),
        initial_deposit: 0,
    }];
    history.extend((1..events - 1).map(|_| AccountEvent::MoneyDeposited {
        amount: 1,
        reference: None,
    }));
    t.append_domain_events(&stream, &history).await;
    // The last event through the repository: it crosses a multiple of 100 and snapshots.
    let repo: Repository<BankAccount, DynamoEventLog> =
        Repository::new(t.store.clone()).with_upcasters(bank_account::upcasters());
    let deposit = AccountCommand::Deposit {
        amount: 1,
        reference: None,
    };
    let done = repo
        .execute(id, &deposit, &CommandContext::default())
        .await
        .unwrap();
    println!(
        "account of {} events, balance {}",
        done.version, done.state.balance
    );

    for (label, repo) in [
        (
            "without snapshot",
            repo.clone().with_snapshot_mode(SnapshotMode::Off),
        ),
        ("with snapshot", repo.clone()),
    ] {
        t.requests.take();
        let started = Instant::now();
        let loaded = repo.load(id).await.unwrap();
        let took = started.elapsed();
        let requests = t.requests.take();
        println!(
            "load {label}: {} events read, requests {requests:?}, {:.0} ms on this DynamoDB (version {}, snapshot {:?})",
            loaded.events_read,
            took.as_secs_f64() * 1000.0,
            loaded.version,
            loaded.snapshot_version
        );
    }
}
