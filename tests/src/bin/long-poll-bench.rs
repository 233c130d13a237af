//! Measures long polling on the DynamoDB the SDK variables name (`make bench` runs it on the
//! local moto server): the delay from an event's global position being assigned to a waiting
//! reader's answer, and what a waiting reader costs in requests per second. It reports
//! figures; it asserts nothing.
//!
//! Usage: long-poll-bench [trials, default 40]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore_core::{AppendBatch, ExpectedVersion, GlobalFilter, READ_WAIT_POLL};
use eventstore_tests::{event, stream, TestStore};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let trials = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40usize);
    let t = Arc::new(TestStore::new().await);
    let mut delays = Vec::new();
    for i in 0..trials {
        let from = t
            .store
            .read_global(&GlobalFilter::All, None, 1000)
            .await
            .unwrap()
            .next;
        let reader = {
            let t = t.clone();
            tokio::spawn(async move {
                t.store
                    .read_global_waiting(
                        &GlobalFilter::All,
                        Some(from),
                        10,
                        Duration::from_secs(20),
                    )
                    .await
                    .unwrap();
                Instant::now()
            })
        };
        // Land the event at a different point of the reader's poll interval each time.
        let offset = READ_WAIT_POLL.as_millis() as u64 * (i as u64 % 10) / 10;
        tokio::time::sleep(Duration::from_millis(100 + offset)).await;
        let batch = AppendBatch::new(vec![event("Bench.Waited", "1")]).unwrap();
        t.store
            .append(&stream("Lp"), ExpectedVersion::NoStream, &batch)
            .await
            .unwrap();
        t.sequence_all().await;
        let assigned = Instant::now();
        let answered = reader.await.unwrap();
        delays.push(answered.saturating_duration_since(assigned));
    }
    delays.sort();
    println!(
        "long poll, position assigned -> waiting reader answered ({trials} trials, poll interval {READ_WAIT_POLL:?}): median {:?}, p90 {:?}, max {:?}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.9),
        delays[delays.len() - 1]
    );

    let wait = Duration::from_secs(5);
    let from = t
        .store
        .read_global(&GlobalFilter::All, None, 1000)
        .await
        .unwrap()
        .next;
    t.requests.take();
    t.store
        .read_global_waiting(&GlobalFilter::All, Some(from), 10, wait)
        .await
        .unwrap();
    let requests = t.requests.take();
    let total: u32 = requests.values().sum();
    println!(
        "long poll, an empty {wait:?} wait: {requests:?} = {:.1} requests/s per waiting reader",
        f64::from(total) / wait.as_secs_f64()
    );
}
