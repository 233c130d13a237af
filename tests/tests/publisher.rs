//! The publisher on the local endpoint: events appended and sequenced reach, through an
//! EventBridge bus and a rule, an SQS queue: each exactly once per event id, one stream's in
//! global order, with the event as the API returns it in `detail`. moto serves EventBridge
//! and SQS beside DynamoDB (scripts/with-dynamodb.sh points the SDK at it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::Target;
use eventstore_core::publish::{Publisher, PublisherConfig};
use eventstore_core::GlobalFilter;
use eventstore_dynamodb::{DynamoPublisherStore, PublisherTrigger};
use eventstore_eventbridge::EventBridgeBus;
use eventstore_tests::{counter_records, event, sdk_config, stream, TestStore};
use serde_json::Value;

/// A bus with a rule that sends every entry of `source` to a new queue; the queue's URL.
async fn bus_to_queue(bus: &str, source: &str) -> String {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .is_ok(),
        "no local EventBridge endpoint: run through scripts/with-dynamodb.sh (make test)"
    );
    let config = sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    events.create_event_bus().name(bus).send().await.unwrap();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{bus}-queue"))
        .send()
        .await
        .unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .event_bus_name(bus)
        .name("to-queue")
        .event_pattern(serde_json::json!({"source": [source]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .event_bus_name(bus)
        .rule("to-queue")
        .targets(Target::builder().id("queue").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();
    url
}

/// Every message in the queue, in the order received, as the EventBridge events they carry.
async fn drain(url: &str) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let mut all = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages();
        if messages.is_empty() {
            return all;
        }
        for m in messages {
            all.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

type TestPublisher =
    Publisher<eventstore_dynamodb::DynamoEventLog, EventBridgeBus, DynamoPublisherStore>;

/// A store, a publisher on it with its checkpoint beside the projector's tables, and a new
/// bus whose rule sends the publisher's entries (its `source`) to `queue`.
struct Setup {
    t: TestStore,
    publisher: TestPublisher,
    source: String,
    queue: String,
}

impl Setup {
    async fn new() -> Self {
        let t = TestStore::new().await;
        t.projector(Vec::new()).await;
        let checkpoints =
            DynamoPublisherStore::new(t.client.clone(), format!("{}-checkpoints", t.table));
        let bus = format!("bus-{}", uuid::Uuid::new_v4().simple());
        let source = format!("eventstore.test.{}", uuid::Uuid::new_v4().simple());
        let queue = bus_to_queue(&bus, &source).await;
        let publisher = Publisher::new(
            t.store.clone(),
            EventBridgeBus::new(aws_sdk_eventbridge::Client::new(&sdk_config().await), &bus),
            checkpoints,
            PublisherConfig::new("eventbridge", &source, GlobalFilter::All),
        );
        Self {
            t,
            publisher,
            source,
            queue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_events_reach_a_queue_through_the_bus_once_each_in_global_order() {
    let Setup {
        t,
        publisher,
        source,
        queue,
    } = Setup::new().await;

    let (a, b) = (stream("Account"), stream("Order"));
    t.append_sequenced(
        a.as_str(),
        (1..=12)
            .map(|i| event("Deposited", &i.to_string()))
            .collect(),
    )
    .await;
    t.append_sequenced(b.as_str(), vec![event("Placed", "{}")])
        .await;
    // The counter's record, as Lambda delivers it; then the same again (a retried batch)
    // and the schedule: nothing is sent twice.
    let response = PublisherTrigger::handle(&publisher, counter_records(&[13]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    PublisherTrigger::handle(&publisher, counter_records(&[13]))
        .await
        .unwrap();
    let report = publisher.handle_scheduled().await.unwrap();
    assert_eq!((report.published, report.checkpoint), (0, 14));
    assert!(report.caught_up, "so the lag it reports is 0");

    let received = drain(&queue).await;
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for e in &received {
        *per_id
            .entry(e["detail"]["eventId"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert_eq!(e["source"], source.as_str());
        assert_eq!(e["detail-type"], e["detail"]["eventType"]);
        assert_eq!(
            e["resources"],
            serde_json::json!([format!(
                "{source}:stream/{}",
                e["detail"]["streamId"].as_str().unwrap()
            )])
        );
    }
    assert_eq!(per_id.len(), 13, "every event arrived");
    assert!(
        per_id.values().all(|n| *n == 1),
        "each exactly once: {per_id:?}"
    );
    let account: Vec<u64> = received
        .iter()
        .filter(|e| e["detail"]["streamId"] == a.as_str())
        .map(|e| e["detail"]["globalPosition"].as_u64().unwrap())
        .collect();
    assert_eq!(
        account,
        (1..=12).collect::<Vec<_>>(),
        "one stream's events in global order"
    );
    let placed = received
        .iter()
        .find(|e| e["detail"]["streamId"] == b.as_str())
        .unwrap();
    assert_eq!(placed["detail"]["data"], serde_json::json!({}));
    assert_eq!(placed["detail"]["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_no_request_can_carry_is_parked_in_the_table_and_the_rest_go_on() {
    use eventstore_core::publish::PublisherStore;
    let Setup {
        t,
        publisher,
        queue,
        ..
    } = Setup::new().await;
    let checkpoints = publisher.checkpoints().clone();
    // Within the store's 256 KB event limit, over EventBridge's with the entry's envelope.
    let big = format!("\"{}\"", "x".repeat(262_000));
    let s = stream("Big");
    t.append_sequenced(
        s.as_str(),
        vec![
            event("Small", "1"),
            event("Huge", &big),
            event("Small", "2"),
        ],
    )
    .await;
    let report = publisher.handle_scheduled().await.unwrap();
    assert_eq!(
        (report.published, report.parked, report.checkpoint),
        (2, 1, 4)
    );
    let parked = checkpoints.parked("eventbridge").await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].position, parked[0].event_type.as_str()),
        (2, "Huge")
    );
    assert_eq!(parked[0].stream_id, s.as_str());
    assert!(
        parked[0].reason.contains("over the bus's limit"),
        "{}",
        parked[0].reason
    );
    let received: Vec<u64> = drain(&queue)
        .await
        .iter()
        .map(|e| e["detail"]["globalPosition"].as_u64().unwrap())
        .collect();
    assert_eq!(received, [1, 3]);
}
