//! Measures the EventBridge publisher on the local endpoints (`make bench` runs it on moto):
//! events published per second, and requests per published event, to EventBridge
//! (`PutEvents`) and to DynamoDB. It reports figures; it asserts nothing.
//!
//! Usage: publisher-bench [events, default 2000]
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use eventstore_core::publish::{Publisher, PublisherConfig};
use eventstore_core::{AppendBatch, ExpectedVersion, GlobalFilter};
use eventstore_dynamodb::DynamoPublisherStore;
use eventstore_eventbridge::EventBridgeBus;
use eventstore_tests::{event, sdk_config, stream, TestStore};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000usize);
    let t = TestStore::new().await;
    t.projector(Vec::new()).await;
    let config = sdk_config().await;
    let bus = format!("bench-{}", uuid::Uuid::new_v4().simple());
    aws_sdk_eventbridge::Client::new(&config)
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let streams: Vec<_> = (0..20).map(|_| stream("Bench")).collect();
    for i in 0..events / 100 {
        let batch = (0..100)
            .map(|k| {
                event(
                    "Bench.Happened",
                    &format!("{{\"n\":{k},\"pad\":\"{}\"}}", "x".repeat(200)),
                )
            })
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
    t.sequence_all().await;
    let publisher = Publisher::new(
        t.store.clone(),
        EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&config), &bus),
        DynamoPublisherStore::new(t.client.clone(), format!("{}-checkpoints", t.table)),
        PublisherConfig::new("bench", "eventstore.bench", GlobalFilter::All),
    );
    t.requests.take();
    let started = Instant::now();
    let report = publisher
        .publish(None, Duration::from_secs(3600))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let dynamodb = t.requests.take();
    let dynamodb_total: u32 = dynamodb.values().sum();
    let published = report.published as f64;
    println!(
        "publisher, {} events of ~300 bytes to a local EventBridge bus: {:.0} events/s ({elapsed:.2?}); {} PutEvents = {:.2} per event; DynamoDB {dynamodb:?} = {:.3} per event",
        report.published,
        published / elapsed.as_secs_f64(),
        report.requests,
        report.requests as f64 / published,
        f64::from(dynamodb_total) / published
    );
}
