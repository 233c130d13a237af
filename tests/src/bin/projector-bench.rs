//! Measures the projector on the DynamoDB the SDK variables name (`make bench`): how fast
//! `account-balances` catches up on N sequenced events (default 2,000 over 50 accounts) and
//! what it writes per event. Reports figures; asserts nothing.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use bank_account::AccountBalances;
use eventstore_core::{AppendBatch, ExpectedVersion, StreamId};
use eventstore_tests::{event, TestStore};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let accounts = 50;
    let t = TestStore::new().await;
    let per_account = events / accounts;
    // Round-robin appends of 10 events, so that a projector step sees many accounts.
    for round in 0..per_account.div_ceil(10) {
        for a in 0..accounts {
            let stream = StreamId::parse(&format!("Account-{a}"), "s").unwrap();
            let batch: Vec<_> = (round * 10..((round + 1) * 10).min(per_account))
                .map(|i| {
                    if i == 0 {
                        event("AccountOpened", r#"{"initialDeposit":100}"#)
                    } else {
                        event("MoneyDeposited", r#"{"amount":1}"#)
                    }
                })
                .collect();
            t.store
                .append(
                    &stream,
                    ExpectedVersion::Any,
                    &AppendBatch::new(batch).unwrap(),
                )
                .await
                .unwrap();
        }
    }
    t.sequence_all().await;
    let projector = t.projector(vec![Arc::new(AccountBalances)]).await;
    t.requests.take();
    let started = Instant::now();
    let report = projector.catch_up(&AccountBalances, None).await.unwrap();
    let took = started.elapsed();
    let requests = t.requests.take();
    let applied = report.applied as f64;
    println!(
        "account-balances: {} events in {:.2} s = {:.0} events/s; {} transactions, {} row writes \
         ({:.3} row writes + {:.3} checkpoint writes per event); requests {requests:?}",
        report.applied,
        took.as_secs_f64(),
        applied / took.as_secs_f64(),
        report.transactions,
        report.rows_written,
        report.rows_written as f64 / applied,
        report.transactions as f64 / applied,
    );
}
