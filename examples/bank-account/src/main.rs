//! Runs a bank account against the DynamoDB the SDK variables name (for example the local one
//! `scripts/with-dynamodb.sh` starts): `scripts/with-dynamodb.sh cargo run -p bank-account`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use bank_account::{upcasters, AccountCommand, BankAccount};
use eventstore_core::{CommandContext, CommandError, EventStore, Repository, SnapshotMode};
use eventstore_dynamodb::{client_from_env, Config, DynamoEventLog};

/// Amounts are in cents.
fn euros(n: i64) -> i64 {
    n * 100
}

#[tokio::main]
async fn main() -> ExitCode {
    let table = Config::from_env().events_table;
    let log = DynamoEventLog::new(client_from_env().await, table.clone());
    if let Err(err) = log.create_table().await {
        eprintln!("cannot reach or create table {table}: {err}");
        return ExitCode::FAILURE;
    }
    let accounts: Repository<BankAccount, _> = Repository::new(EventStore::new(log))
        .with_upcasters(upcasters())
        .with_snapshot_mode(SnapshotMode::Inline);
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("demo-{}", std::process::id()));
    let context = CommandContext {
        correlation_id: Some(format!("demo-run-{}", std::process::id())),
        causation_id: None,
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
    match accounts.load(&id).await {
        Ok(loaded) => {
            println!(
                "loaded: {:?} at version {} ({} events read)",
                loaded.state, loaded.version, loaded.events_read
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("load failed: {err}");
            ExitCode::FAILURE
        }
    }
}
