//! Shared set-up for the specification tests: a fresh events table per test on the DynamoDB
//! the SDK's endpoint variables point at (moto server under `make test`), and a counter of
//! the requests the store sends.
#![forbid(unsafe_code)]
// Test support: a failed set-up step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::config::Intercept;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use eventstore_core::aggregate::encode_event;
use eventstore_core::{AppendBatch, DomainEvent, ExpectedVersion, Projection};
use eventstore_core::{EventData, EventStore, EventType, NewEvent, StreamId};
use eventstore_dynamodb::{
    create_events_table, create_key_value_table, keys, DynamoEventLog, ProjectionTables, Projector,
    Sequencer,
};

pub type Item = HashMap<String, AttributeValue>;

pub mod capacity;
mod failed;
mod faults;
pub use faults::{
    CancelTransactions, DynamoDbLimits, LaggingIndex, LoseWriteAnswers, RequestCounter, Throttle,
    TrimmedStream,
};

/// A batch of the counter item's stream records, as Lambda delivers them to the projector:
/// one record per value of `last`.
pub fn counter_records(lasts: &[u64]) -> aws_lambda_events::event::dynamodb::Event {
    let records: Vec<serde_json::Value> = lasts
        .iter()
        .enumerate()
        .map(|(i, last)| {
            serde_json::json!({
                "eventID": format!("{i}"),
                "eventName": if i == 0 { "INSERT" } else { "MODIFY" },
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": {"PK": {"S": "COUNTER#ALL"}, "SK": {"S": "COUNTER"}},
                    "NewImage": {"PK": {"S": "COUNTER#ALL"}, "SK": {"S": "COUNTER"},
                                 "last": {"N": last.to_string()}},
                    "SequenceNumber": format!("{:028}", 1000 + i),
                    "SizeBytes": 72,
                    "StreamViewType": "NEW_IMAGE"
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-11-23T00:00:00.000"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// The event the projector's EventBridge schedule delivers (`infra/template.yaml`).
pub fn scheduled_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-25T20:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/projector-catch-up"],
        "detail": {}
    })
}

/// A store over a new, empty events table.
pub struct TestStore {
    pub store: EventStore<DynamoEventLog>,
    pub client: Client,
    pub table: String,
    pub requests: RequestCounter,
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

impl TestStore {
    pub async fn new() -> Self {
        Self::build(None::<RequestCounter>, true).await
    }

    /// A store whose client loses the answers to some writes (see [`LoseWriteAnswers`]).
    pub async fn losing_answers(lose: LoseWriteAnswers) -> Self {
        Self::build(Some(lose), true).await
    }

    /// A store whose client loses the answers to some writes and does not retry: the write
    /// lands, and the caller gets the failure, as a client does whose request timed out.
    pub async fn losing_answers_without_retries(lose: LoseWriteAnswers) -> Self {
        Self::build(Some(lose), false).await
    }

    /// A store whose client goes through `fault`, an interceptor that injects a DynamoDB
    /// behaviour moto lacks.
    pub async fn with_fault(fault: impl Intercept + 'static) -> Self {
        Self::build(Some(fault), true).await
    }

    async fn build(fault: Option<impl Intercept + 'static>, retries: bool) -> Self {
        let requests = RequestCounter::default();
        let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
            .interceptor(requests.clone());
        if !retries {
            config = config.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled());
        }
        if let Some(fault) = fault {
            config = config.interceptor(fault);
        }
        let config = config.build();
        let client = Client::from_conf(config);
        let table = format!("test-{}", uuid::Uuid::new_v4().simple());
        create_events_table(&client, &table)
            .await
            .expect("create the test table (is a DynamoDB endpoint set? run `make test`)");
        requests.take();
        Self {
            store: EventStore::new(DynamoEventLog::new(client.clone(), table.clone())),
            client,
            table,
            requests,
        }
    }

    /// Every item stored under the stream's partition key, read consistently, all pages.
    pub async fn raw_items(&self, stream: &StreamId) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(keys::stream_pk(stream.as_str())),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        self.requests.take();
        items
    }

    /// Every item in the table (a consistent scan, all pages).
    pub async fn all_items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        self.requests.take();
        items
    }

    pub async fn item_count(&self) -> usize {
        self.all_items().await.len()
    }

    /// A sequencer for this table, on a client of its own.
    pub async fn sequencer(&self) -> Sequencer {
        let client = Client::new(&sdk_config().await);
        Sequencer::new(DynamoEventLog::new(client, self.table.clone()))
    }

    /// A projector over this table's events, with two fresh tables of its own for rows and
    /// checkpoints.
    pub async fn projector(&self, projections: Vec<Arc<dyn Projection>>) -> Projector {
        let tables = ProjectionTables {
            rows: format!("{}-rows", self.table),
            checkpoints: format!("{}-checkpoints", self.table),
        };
        for table in [&tables.rows, &tables.checkpoints] {
            create_key_value_table(&self.client, table).await.unwrap();
        }
        self.requests.take();
        eventstore_dynamodb::projector(self.store.log().clone(), tables, projections)
    }

    /// Runs the table's stream through the local event source into the sequencer until the
    /// stream holds nothing new, as Lambda's event source mapping would.
    pub async fn sequence_all(&self) {
        let sequencer = self.sequencer().await;
        let mut source = sequencer.local_source().await.unwrap();
        while source.drain(&|e| sequencer.handle(e)).await.unwrap() > 0 {}
    }

    /// Appends `events` to a new stream `stream`, then sequences the table.
    pub async fn append_sequenced(&self, stream: &str, events: Vec<NewEvent>) {
        let stream = StreamId::parse(stream, "streamId").unwrap();
        let batch = AppendBatch::new(events).unwrap();
        self.store
            .append(&stream, ExpectedVersion::NoStream, &batch)
            .await
            .unwrap();
        self.sequence_all().await;
    }

    /// Appends domain events straight to the stream, 100 an append, bypassing any aggregate
    /// (for long histories), each at its type's current schema version.
    pub async fn append_domain_events<E: DomainEvent>(&self, stream: &StreamId, events: &[E]) {
        for chunk in events.chunks(100) {
            let batch = chunk
                .iter()
                .map(|e| {
                    let (t, data) = encode_event(e).unwrap();
                    let mut new = NewEvent::new(t, data);
                    new.schema_version = e.schema_version();
                    new
                })
                .collect();
            self.store
                .append(
                    stream,
                    ExpectedVersion::Any,
                    &AppendBatch::new(batch).unwrap(),
                )
                .await
                .unwrap();
        }
    }

    /// (stream id, version, global position) of every event item, ordered by stream and
    /// version.
    pub async fn positions(&self) -> Vec<(String, u64, Option<u64>)> {
        let mut found: Vec<(String, u64, Option<u64>)> = self
            .all_items()
            .await
            .iter()
            .filter(|i| s(i, "SK").starts_with("VERSION#") && i.contains_key("eventId"))
            .map(|i| {
                let n = |k: &str| i.get(k).map(|v| v.as_n().unwrap().parse::<u64>().unwrap());
                (
                    s(i, "streamId").to_owned(),
                    n("version").unwrap(),
                    n("globalPosition"),
                )
            })
            .collect();
        found.sort();
        found
    }

    /// The value of a counter item (`COUNTER#ALL`, `COUNTER#TYPE#<t>`, ...), 0 if absent.
    pub async fn counter(&self, pk: &str) -> u64 {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("PK", AttributeValue::S(pk.to_owned()))
            .key("SK", AttributeValue::S("COUNTER".to_owned()))
            .send()
            .await
            .unwrap();
        self.requests.take();
        out.item
            .and_then(|i| i.get("last").map(|v| v.as_n().unwrap().parse().unwrap()))
            .unwrap_or(0)
    }
}

/// Asserts the sequencer's guarantees over a table's events: positions 1..=n, each used
/// once, every event sequenced, and each stream's positions rising with its versions.
pub fn assert_dense_and_in_stream_order(positions: &[(String, u64, Option<u64>)]) {
    let mut all: Vec<u64> = positions
        .iter()
        .map(|(stream, version, p)| p.unwrap_or_else(|| panic!("{stream} v{version} unsequenced")))
        .collect();
    all.sort_unstable();
    let want: Vec<u64> = (1..=positions.len() as u64).collect();
    assert_eq!(all, want, "positions are not exactly 1..=n");
    for pair in positions.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(
                pair[0].2 < pair[1].2,
                "{} v{} got {:?} but v{} got {:?}",
                pair[0].0,
                pair[0].1,
                pair[0].2,
                pair[1].1,
                pair[1].2
            );
        }
    }
}

/// A stream id unique to this run, in category `category`.
pub fn stream(category: &str) -> StreamId {
    StreamId::parse(
        &format!("{category}-{}", uuid::Uuid::new_v4().simple()),
        "streamId",
    )
    .unwrap()
}

pub fn event(event_type: &str, json: &str) -> NewEvent {
    NewEvent::new(
        EventType::parse(event_type, "eventType").unwrap(),
        EventData::from_json(json.to_owned(), "data").unwrap(),
    )
}

/// `n` small events, numbered in their data.
pub fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event("Counted", &format!("{{\"n\":{i}}}")))
        .collect()
}

/// The `S` attribute `name` of an item.
pub fn s<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).unwrap()
}

/// Helpers for driving the HTTP router directly, as the Lambda runtime and the local server do.
pub mod http {
    use eventstore_dynamodb::DynamoEventLog;
    use eventstore_http::{App, Mount};
    use lambda_http::{Body, Request};

    /// Status, headers and parsed JSON body of a response.
    pub struct Answer {
        pub status: u16,
        pub headers: lambda_http::http::HeaderMap,
        pub text: String,
        pub json: serde_json::Value,
    }

    pub fn request(method: &str, uri: &str, body: Option<&str>) -> Request {
        lambda_http::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.map_or(Body::Empty, |b| Body::Text(b.to_owned())))
            .unwrap()
    }

    pub fn app(store: &super::TestStore, mount: Mount) -> App<DynamoEventLog> {
        App::new(store.store.clone(), mount)
    }

    pub async fn call<P>(app: &App<DynamoEventLog, P>, request: Request) -> Answer
    where
        P: eventstore_core::ProjectionStore + eventstore_core::SubscriptionStore,
    {
        answer(app.handle(request, "test").await)
    }

    pub fn answer(response: lambda_http::Response<Body>) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = match response.body() {
            Body::Text(t) => t.clone(),
            other => panic!("responses must be text bodies, got {other:?}"),
        };
        let json = serde_json::from_str(&text).unwrap();
        Answer {
            status,
            headers,
            text,
            json,
        }
    }
}
