//! The repository path side by side with dynamo-es and cqrs-es 0.5, on the DynamoDB the SDK
//! variables name (`make bench-compare` runs it on the local moto server): the same
//! aggregate, a 2,000-event ledger, the same operations, interleaved round by round, with
//! the requests each operation sends counted on the wire by one SDK interceptor. It reports
//! figures; it asserts nothing.
//!
//! Usage: compare-bench [rounds, default 5]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::EventStore as _;
use eventstore_core::{CommandContext, Repository, SnapshotMode};
use eventstore_dynamodb::DynamoEventLog;
use eventstore_tests::{sdk_config, RequestCounter, TestStore};
use serde::{Deserialize, Serialize};

/// The aggregate both run: a ledger of deposits.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Ledger {
    balance: i64,
    entries: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum LedgerEvent {
    Deposited { amount: i64 },
}

#[derive(Debug, Clone)]
enum LedgerCommand {
    Deposit(i64),
    DepositMany(usize),
}

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

fn decide(command: &LedgerCommand) -> Vec<LedgerEvent> {
    match command {
        LedgerCommand::Deposit(amount) => vec![LedgerEvent::Deposited { amount: *amount }],
        LedgerCommand::DepositMany(n) => vec![LedgerEvent::Deposited { amount: 1 }; *n],
    }
}

fn fold(state: &mut Ledger, event: &LedgerEvent) {
    match event {
        LedgerEvent::Deposited { amount } => {
            state.balance += amount;
            state.entries += 1;
        }
    }
}

impl eventstore_core::DomainEvent for LedgerEvent {}

impl eventstore_core::Aggregate for Ledger {
    const CATEGORY: &'static str = "Ledger";
    type Event = LedgerEvent;
    type Command = LedgerCommand;
    type Error = Refused;

    fn decide(&self, command: &LedgerCommand) -> Result<Vec<LedgerEvent>, Refused> {
        Ok(decide(command))
    }

    fn apply(&mut self, event: &LedgerEvent) {
        fold(self, event);
    }
}

impl cqrs_es::DomainEvent for LedgerEvent {
    fn event_type(&self) -> String {
        "Deposited".into()
    }

    fn event_version(&self) -> String {
        "1".into()
    }
}

impl cqrs_es::Aggregate for Ledger {
    const TYPE: &'static str = "ledger";
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type Error = Refused;
    type Services = ();

    async fn handle(
        &mut self,
        command: LedgerCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Refused> {
        for event in decide(&command) {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: LedgerEvent) {
        fold(self, &event);
    }
}

fn ctx() -> CommandContext {
    CommandContext {
        correlation_id: None,
        causation_id: None,
        idempotency_key: None,
    }
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, range: bool) {
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("AggregateTypeAndId")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("AggregateTypeAndId")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        );
    if range {
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("AggregateIdSequence")
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("AggregateIdSequence")
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            );
    }
    create.send().await.unwrap();
}

/// One operation's figures over the rounds.
#[derive(Default)]
struct Figures {
    times: Vec<Duration>,
    requests: BTreeMap<String, u32>,
}

impl Figures {
    fn record(&mut self, time: Duration, requests: BTreeMap<String, u32>) {
        self.times.push(time);
        // The same every round; keep the last.
        self.requests = requests;
    }

    fn describe(&self) -> String {
        let mut times = self.times.clone();
        times.sort();
        let median = times.get(times.len() / 2).copied().unwrap_or_default();
        let requests: Vec<String> = self
            .requests
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        format!("{} in {median:.1?}", requests.join(" + "))
    }
}

type Ours = Repository<Ledger, DynamoEventLog>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5usize);

    // Ours: a table of its own, counted by TestStore's interceptor.
    let t = TestStore::new().await;
    let plain: Ours = Repository::new(t.store.clone()).with_snapshot_mode(SnapshotMode::Off);
    let snapshotted: Ours = Repository::new(t.store.clone()).with_snapshot_every(100);

    // dynamo-es: its two tables, through a client with the same kind of counter.
    let counter = RequestCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (events_table, snapshots_table) = (format!("Events-{run}"), format!("Snapshots-{run}"));
    create_table(&client, &events_table, true).await;
    create_table(&client, &snapshots_table, false).await;
    let repo = || {
        dynamo_es::DynamoEventRepository::new(client.clone())
            .with_tables(&events_table, &snapshots_table)
    };
    let their_events: PersistedEventStore<_, Ledger> = PersistedEventStore::new_event_store(repo());
    let their_snapshots: PersistedEventStore<_, Ledger> =
        PersistedEventStore::new_snapshot_store(repo(), 100);
    let their_plain_cqrs = cqrs_es::CqrsFramework::new(
        PersistedEventStore::<_, Ledger>::new_event_store(repo()),
        vec![],
        (),
    );
    let their_snapshot_cqrs = cqrs_es::CqrsFramework::new(
        PersistedEventStore::<_, Ledger>::new_snapshot_store(repo(), 100),
        vec![],
        (),
    );

    // Two 2,000-event ledgers each: one never snapshotted, one snapshotted every 100.
    // dynamo-es writes a command's events in one transaction of at most 25 items
    // (TransactionListTooLong above; with its snapshot store the snapshot is one of them),
    // so its ledgers are built 25 and 20 events a command.
    let (plain_id, snap_id) = ("plain".to_owned(), "snap".to_owned());
    for _ in 0..20 {
        let many = LedgerCommand::DepositMany(100);
        plain.execute(&plain_id, &many, &ctx()).await.unwrap();
        snapshotted.execute(&snap_id, &many, &ctx()).await.unwrap();
        for _ in 0..4 {
            let quarter = LedgerCommand::DepositMany(25);
            their_plain_cqrs.execute(&plain_id, quarter).await.unwrap();
        }
        for _ in 0..5 {
            let fifth = LedgerCommand::DepositMany(20);
            their_snapshot_cqrs.execute(&snap_id, fifth).await.unwrap();
        }
    }

    let names = [
        "load, no snapshot",
        "load with a snapshot",
        "command with a snapshot (load, decide, append)",
        "append of 100 events (dynamo-es: 4 commands of 25, its most)",
    ];
    let mut ours: Vec<Figures> = names.iter().map(|_| Figures::default()).collect();
    let mut theirs: Vec<Figures> = names.iter().map(|_| Figures::default()).collect();
    for round in 0..rounds {
        let fresh = format!("fresh-{round}");
        for (op, figures) in ours.iter_mut().enumerate() {
            t.requests.take();
            let started = Instant::now();
            match op {
                0 => drop(plain.load(&plain_id).await.unwrap()),
                1 => drop(snapshotted.load(&snap_id).await.unwrap()),
                2 => drop(
                    snapshotted
                        .execute(&snap_id, &LedgerCommand::Deposit(1), &ctx())
                        .await
                        .unwrap(),
                ),
                _ => drop(
                    plain
                        .execute(&fresh, &LedgerCommand::DepositMany(100), &ctx())
                        .await
                        .unwrap(),
                ),
            }
            figures.record(started.elapsed(), t.requests.take());
        }
        for (op, figures) in theirs.iter_mut().enumerate() {
            counter.take();
            let started = Instant::now();
            match op {
                0 => drop(their_events.load_aggregate(&plain_id).await.unwrap()),
                1 => drop(their_snapshots.load_aggregate(&snap_id).await.unwrap()),
                2 => their_snapshot_cqrs
                    .execute(&snap_id, LedgerCommand::Deposit(1))
                    .await
                    .unwrap(),
                _ => {
                    for _ in 0..4 {
                        their_plain_cqrs
                            .execute(&fresh, LedgerCommand::DepositMany(25))
                            .await
                            .unwrap();
                    }
                }
            }
            figures.record(started.elapsed(), counter.take());
        }
    }
    println!("2,000-event ledger, {rounds} interleaved rounds, median time, requests on the wire");
    println!("| operation | this store | dynamo-es 0.5 (cqrs-es 0.5) |");
    println!("|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        println!(
            "| {name} | {} | {} |",
            ours[i].describe(),
            theirs[i].describe()
        );
    }
}
