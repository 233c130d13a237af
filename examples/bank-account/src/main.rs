//! Runs a bank account against the DynamoDB the SDK variables name (for example the local one
//! `scripts/with-dynamodb.sh` starts): `scripts/with-dynamodb.sh cargo run -p bank-account`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use bank_account::{upcasters, AccountCommand, BankAccount};
use std::sync::Arc;

use eventstore_core::builtin::AccountBalances;
use eventstore_core::{
    CommandContext, CommandError, EventStore, Repository, SnapshotMode, StoreError,
};
use eventstore_dynamodb::{
    client_from_env, create_key_value_table, Config, DynamoEventLog, Projector, Sequencer,
    StreamHint,
};

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
    match project(&table, &id, loaded.version).await {
        Ok(row) => println!("account-balances row for {id}: {row}"),
        Err(err) => {
            eprintln!("projection failed: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

async fn project(table: &str, id: &str, version: u64) -> Result<String, StoreError> {
    let config = Config::from_env();
    let client = client_from_env().await;
    for t in [
        &config.projection_tables.rows,
        &config.projection_tables.checkpoints,
    ] {
        create_key_value_table(&client, t).await?;
    }
    let log = DynamoEventLog::new(client, table);
    let stream = Repository::<BankAccount, DynamoEventLog>::stream_id(id)?;
    Sequencer::new(log.clone())
        .sequence(&[StreamHint { stream, version }])
        .await?;
    let projector = Projector::new(
        log,
        config.projection_tables,
        vec![Arc::new(AccountBalances)],
    )
    .with_upcasters(upcasters());
    projector.catch_up(&AccountBalances, None).await?;
    let (rows, _) = projector.rows("account-balances", id, None, 1).await?;
    Ok(rows
        .first()
        .map_or_else(|| "none".to_owned(), |(_, value)| value.to_string()))
}
