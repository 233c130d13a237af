//! Measures the sequencer on the DynamoDB the SDK variables name (`make bench` runs it on
//! the local moto server): sequencing throughput, and the lag from an acknowledged append to
//! the event being readable in `$all`. It reports figures; it asserts nothing.
//!
//! Usage: sequencer-bench [events for throughput, default 2000] [appends for lag, default 200]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventstore_core::{AppendBatch, ExpectedVersion, GlobalFilter};
use eventstore_tests::{event, stream, TestStore};
use uuid::Uuid;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = arg(1, 2000);
    let appends = arg(2, 200);
    throughput(events, 1).await;
    throughput(events, 10).await;
    lag(appends).await;
}

/// Appends `events` events (in appends of `per_append`, 4 writers over 50 streams) with no
/// sequencer running, then times the local event source and sequencer catching up.
async fn throughput(events: usize, per_append: usize) {
    let t = Arc::new(TestStore::new().await);
    let streams: Arc<Vec<_>> = Arc::new(
        (0..50)
            .map(|i| stream(["Order", "Cart", "User"][i % 3]))
            .collect(),
    );
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (t, streams) = (t.clone(), streams.clone());
            tokio::spawn(async move {
                for i in (w..events / per_append).step_by(4) {
                    let batch = (0..per_append)
                        .map(|k| event(&format!("T{}", (i + k) % 5), "{\"n\":1}"))
                        .collect();
                    t.store
                        .append(
                            &streams[i % streams.len()],
                            ExpectedVersion::Any,
                            &AppendBatch::new(batch).unwrap(),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let started = Instant::now();
    t.sequence_all().await;
    let took = started.elapsed();
    let sequenced = t.positions().await.iter().filter(|p| p.2.is_some()).count();
    println!(
        "throughput: {sequenced} events ({per_append} per append, 50 streams) sequenced in {:.2} s = {:.0} events/s",
        took.as_secs_f64(),
        sequenced as f64 / took.as_secs_f64()
    );
}

/// One append every 50 ms to 10 streams while the local event source runs (as under
/// `make dev`) and a reader follows `$all`; the lag of each event is the time from the
/// append's acknowledgement to the reader first seeing it.
async fn lag(appends: usize) {
    let t = Arc::new(TestStore::new().await);
    let sequencer = t.sequencer().await;
    let poller = tokio::spawn(async move {
        let source = sequencer.local_source().await.unwrap();
        source.run(|e| sequencer.handle(e)).await.unwrap();
    });
    let acked: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let writer = {
        let (t, acked) = (t.clone(), acked.clone());
        tokio::spawn(async move {
            let streams: Vec<_> = (0..10).map(|_| stream("Lag")).collect();
            for i in 0..appends {
                let batch = AppendBatch::new(vec![event("Ticked", "{}")]).unwrap();
                let outcome = t
                    .store
                    .append(&streams[i % 10], ExpectedVersion::Any, &batch)
                    .await
                    .unwrap();
                acked
                    .lock()
                    .unwrap()
                    .insert(outcome.event_ids[0], Instant::now());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut lags = Vec::new();
    let mut next = 1;
    while lags.len() < appends {
        let page = t
            .store
            .read_global(&GlobalFilter::All, Some(next), 1000)
            .await
            .unwrap();
        let now = Instant::now();
        for e in &page.events {
            if let Some(at) = acked.lock().unwrap().get(&e.event_id) {
                lags.push(now.saturating_duration_since(*at));
            }
        }
        next = page.next;
        if page.events.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    writer.await.unwrap();
    poller.abort();
    lags.sort();
    println!(
        "lag append -> visible in $all over {} events: median {} ms, p99 {} ms, max {} ms",
        lags.len(),
        percentile(&lags, 0.5).as_millis(),
        percentile(&lags, 0.99).as_millis(),
        lags.last().unwrap().as_millis()
    );
}
