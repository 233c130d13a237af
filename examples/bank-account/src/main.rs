//! Runs a bank account against the DynamoDB the SDK variables name (for example the local one
//! `scripts/with-dynamodb.sh` starts): `scripts/with-dynamodb.sh cargo run -p bank-account`.
//!
//! `cargo run -p bank-account -- follow` instead prints the accounts' events as they happen,
//! from a catch-up subscription (`account-printer`, its checkpoint in the checkpoints table):
//! run it beside `make dev` (same `EVENTS_TABLE` and endpoint) and append to an `Account-`
//! stream.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use bank_account::{registry, AccountBalances, AccountCommand, BankAccount};
use eventstore_core::{
    Category, CommandContext, CommandError, GlobalFilter, Repository, SnapshotMode, StoreError,
};
use eventstore_dynamodb::{Components, DynamoEventLog, StreamHint};
use futures::StreamExt;

/// Amounts are in cents.
fn euros(n: i64) -> i64 {
    n * 100
}

#[tokio::main]
async fn main() -> ExitCode {
    // Built as the deployed functions build it, with this app's registry.
    let components = Components::from_env(registry()).await;
    let table = components.config.events_table.clone();
    if let Err(err) = components.create_tables().await {
        eprintln!("cannot reach or create the tables: {err}");
        return ExitCode::FAILURE;
    }
    if std::env::args().nth(1).as_deref() == Some("follow") {
        return match follow(&components).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("subscription failed: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let accounts: Repository<BankAccount, _> = Repository::new(components.store())
        .with_upcasters(components.registry.upcasters.clone())
        .with_snapshot_mode(SnapshotMode::Inline);
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("demo-{}", std::process::id()));
    let context = CommandContext {
        correlation_id: Some(format!("demo-run-{}", std::process::id())),
        causation_id: None,
        idempotency_key: None,
    };
    let commands = [
        AccountCommand::Open {
            owner: "Ada".into(),
            initial_deposit: euros(100),
        },
        AccountCommand::Deposit {
            amount: euros(50),
            reference: Some("salary".into()),
        },
        AccountCommand::Withdraw { amount: euros(30) },
        AccountCommand::Withdraw {
            amount: euros(1000),
        },
        AccountCommand::Close,
        AccountCommand::Withdraw { amount: euros(120) },
        AccountCommand::Close,
        AccountCommand::Deposit {
            amount: 1,
            reference: None,
        },
    ];
    println!("account Account-{id} in table {table}");
    for command in &commands {
        match accounts.execute(&id, command, &context).await {
            Ok(done) => println!(
                "{command:?}\n  -> ok, version {}, balance {}",
                done.version, done.state.balance
            ),
            Err(CommandError::Rejected(reason)) => {
                println!("{command:?}\n  -> rejected: {reason}")
            }
            Err(err) => {
                eprintln!("{command:?} failed: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let loaded = match accounts.load(&id).await {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("load failed: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "loaded: {:?} at version {} ({} events read)",
        loaded.state, loaded.version, loaded.events_read
    );
    // The account-balances projection reads the same events. On AWS (and under `make dev`)
    // the sequencer and the projector run on their own; here they are called directly.
    match project(&components, &id, loaded.version).await {
        Ok(row) => println!("account-balances row for {id}: {row}"),
        Err(err) => {
            eprintln!("projection failed: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Prints every `Account` event, history first, then as the sequencer gives them their
/// positions, until interrupted. Each is printed before the subscription's checkpoint moves
/// past it, so a restart goes on where it stopped (at least once: the one being printed at
/// a crash comes again).
async fn follow(components: &Components) -> Result<(), StoreError> {
    let accounts = GlobalFilter::Category(Category::parse("Account", "category")?);
    let mut events = components
        .subscription("account-printer")
        .filter(accounts)
        .stream();
    println!("following the Account category; Ctrl-C stops");
    while let Some(event) = events.next().await {
        let event = event?;
        println!(
            "#{} {} v{} {} {}",
            event.global_position.unwrap_or_default(),
            event.stream_id,
            event.version,
            event.event_type,
            event.data.as_json()
        );
    }
    Ok(())
}

async fn project(components: &Components, id: &str, version: u64) -> Result<String, StoreError> {
    let stream = Repository::<BankAccount, DynamoEventLog>::stream_id(id)?;
    components
        .sequencer()
        .sequence(&[StreamHint { stream, version }])
        .await?;
    let projector = components.projector();
    projector.catch_up(&AccountBalances, None).await?;
    let (rows, _) = projector.rows("account-balances", id, None, 1).await?;
    Ok(rows
        .first()
        .map_or_else(|| "none".to_owned(), |(_, value)| value.to_string()))
}
