//! Shared set-up for the specification tests: a fresh events table per test on the DynamoDB
//! the SDK's endpoint variables point at (moto server under `make test`), and a counter of
//! the requests the store sends.
#![forbid(unsafe_code)]
// Test support: a failed set-up step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use eventstore_core::aggregate::encode_event;
use eventstore_core::{AppendBatch, DomainEvent, ExpectedVersion, Projection};
use eventstore_core::{EventData, EventStore, EventType, NewEvent, StreamId};
use eventstore_dynamodb::{
    create_events_table, create_key_value_table, keys, DynamoEventLog, ProjectionTables, Projector,
    Sequencer,
};

pub type Item = HashMap<String, AttributeValue>;

/// Counts the HTTP requests sent to DynamoDB, per operation, retries included.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u32>>>);

impl RequestCounter {
    pub fn take(&self) -> BTreeMap<String, u32> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown".to_owned(), |m| m.name().to_owned());
        *self.0.lock().unwrap().entry(operation).or_default() += 1;
        Ok(())
    }
}

/// Turns the successful answer to every `every`-th write (PutItem, TransactWriteItems) into
/// a 500, on the first attempt only: the write has happened, its answer is lost, and the
/// SDK retries it. This is the ambiguous failure every client of DynamoDB must survive.
#[derive(Debug, Clone)]
pub struct LoseWriteAnswers {
    every: u32,
    writes: Arc<std::sync::atomic::AtomicU32>,
    lost: Arc<std::sync::atomic::AtomicU32>,
}

impl LoseWriteAnswers {
    pub fn every(every: u32) -> Self {
        Self {
            every,
            writes: Arc::default(),
            lost: Arc::default(),
        }
    }

    /// How many answers were lost so far.
    pub fn lost(&self) -> u32 {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Intercept for LoseWriteAnswers {
    fn name(&self) -> &'static str {
        "LoseWriteAnswers"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use std::sync::atomic::Ordering;
        let write = cfg
            .load::<Metadata>()
            .is_some_and(|m| matches!(m.name(), "PutItem" | "TransactWriteItems"));
        let first_attempt = cfg
            .load::<aws_smithy_runtime_api::client::retries::RequestAttempts>()
            .is_some_and(|a| a.attempts() == 1);
        let response = context.response_mut();
        if write && first_attempt && response.status().as_u16() == 200 {
            let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
            if n % self.every == 0 {
                *response.status_mut() = 500u16.try_into()?;
                *response.body_mut() = aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"answer lost in transit"}"#,
                );
                self.lost.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

/// Cancels the next `n` `TransactWriteItems` calls without running them, answering as
/// DynamoDB does when a transaction is throttled: HTTP 400, `TransactionCanceledException`,
/// with the reason `reason` (`ThrottlingError`, `ProvisionedThroughputExceeded`,
/// `TransactionConflict`) on the first action and `None` on the others. moto never throttles.
///
/// The request is turned into a harmless `ListTables` before it is sent, so nothing is
/// written; its answer is then replaced by the cancellation.
#[derive(Debug, Clone)]
pub struct CancelTransactions {
    reason: &'static str,
    remaining: Arc<std::sync::atomic::AtomicU32>,
    cancelled: Arc<std::sync::atomic::AtomicU32>,
}

/// Marks an attempt whose request [`CancelTransactions`] replaced: how many actions it had.
#[derive(Debug, Clone, Copy)]
struct CancelledAttempt(usize);

impl aws_smithy_types::config_bag::Storable for CancelledAttempt {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl CancelTransactions {
    pub fn next(n: u32, reason: &'static str) -> Self {
        Self {
            reason,
            remaining: Arc::new(n.into()),
            cancelled: Arc::default(),
        }
    }

    /// Cancels every transaction from now on.
    pub fn always(reason: &'static str) -> Self {
        Self::next(u32::MAX, reason)
    }

    /// Stops cancelling: DynamoDB has recovered.
    pub fn recover(&self) {
        self.remaining.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many transactions were cancelled so far.
    pub fn cancelled(&self) -> u32 {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Intercept for CancelTransactions {
    fn name(&self) -> &'static str {
        "CancelTransactions"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use std::sync::atomic::Ordering;
        let transaction = cfg
            .load::<Metadata>()
            .is_some_and(|m| m.name() == "TransactWriteItems");
        if !transaction {
            return Ok(());
        }
        let take = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if take.is_err() {
            return Ok(());
        }
        let actions = serde_json::from_slice::<serde_json::Value>(
            context.request().body().bytes().unwrap_or_default(),
        )
        .ok()
        .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1);
        let request = context.request_mut();
        request
            .headers_mut()
            .insert("x-amz-target", "DynamoDB_20120810.ListTables");
        cfg.interceptor_state().store_put(CancelledAttempt(actions));
        request.headers_mut().insert("content-length", "2");
        *request.body_mut() = aws_smithy_types::body::SdkBody::from("{}");
        self.cancelled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(CancelledAttempt(actions)) = cfg.load::<CancelledAttempt>().copied() else {
            return Ok(());
        };
        // One mark per attempt: a retry decides afresh.
        cfg.interceptor_state().unset::<CancelledAttempt>();
        let reasons: Vec<serde_json::Value> = (0..actions)
            .map(|i| {
                if i == 0 {
                    serde_json::json!({"Code": self.reason, "Message": "Throughput exceeds the current capacity of your table or index."})
                } else {
                    serde_json::json!({"Code": "None"})
                }
            })
            .collect();
        let body = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", self.reason),
            "CancellationReasons": reasons,
        });
        let response = context.response_mut();
        *response.status_mut() = 400u16.try_into()?;
        *response.body_mut() = aws_smithy_types::body::SdkBody::from(body.to_string());
        Ok(())
    }
}

/// Enforces DynamoDB's limits on `TransactWriteItems` that moto does not: at most
/// `max_actions` actions, no item over `item_bytes`, items totalling at most
/// `transaction_bytes` (real DynamoDB: 100, 400 KB, 4 MB). A refused transaction is not
/// sent (it becomes a harmless `ListTables`), and its answer is DynamoDB's documented one:
/// too many actions or too many bytes, HTTP 400 `ValidationException`; one item too large,
/// `TransactionCanceledException` with a `ValidationError` reason on that item.
///
/// Sizes are counted as DynamoDB documents them: each attribute's name plus its value
/// (string bytes; about one byte per two digits of a number), the key only for an update,
/// delete or check.
#[derive(Debug, Clone)]
pub struct DynamoDbLimits {
    max_actions: usize,
    item_bytes: usize,
    transaction_bytes: usize,
    refused: Arc<std::sync::atomic::AtomicU32>,
}

/// Marks an attempt [`DynamoDbLimits`] refused: the answer to give.
#[derive(Debug, Clone)]
struct RefusedAttempt(u16, String);

impl aws_smithy_types::config_bag::Storable for RefusedAttempt {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl DynamoDbLimits {
    /// Real DynamoDB's limits.
    pub fn aws() -> Self {
        Self {
            max_actions: 100,
            item_bytes: 400 * 1024,
            transaction_bytes: 4 * 1024 * 1024,
            refused: Arc::default(),
        }
    }

    /// A smaller transaction limit: DynamoDB counting more bytes than a writer estimated.
    pub fn with_transaction_bytes(mut self, bytes: usize) -> Self {
        self.transaction_bytes = bytes;
        self
    }

    /// How many transactions were refused so far.
    pub fn refused(&self) -> u32 {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn value_bytes(value: &serde_json::Value) -> usize {
        use serde_json::Value as J;
        let Some(obj) = value.as_object() else {
            return 0;
        };
        obj.iter()
            .map(|(kind, v)| match (kind.as_str(), v) {
                ("S", J::String(s)) => s.len(),
                ("N", J::String(n)) => n.len().div_ceil(2) + 1,
                ("B", J::String(b)) => b.len() * 3 / 4,
                ("BOOL" | "NULL", _) => 1,
                ("M", J::Object(m)) => {
                    3 + m
                        .iter()
                        .map(|(k, v)| k.len() + Self::value_bytes(v) + 1)
                        .sum::<usize>()
                }
                ("L", J::Array(l)) => 3 + l.iter().map(|v| Self::value_bytes(v) + 1).sum::<usize>(),
                (_, J::Array(l)) => l
                    .iter()
                    .map(|v| v.as_str().map_or(0, str::len))
                    .sum::<usize>(),
                _ => 0,
            })
            .sum()
    }

    fn item_bytes(item: &serde_json::Value) -> usize {
        item.as_object().map_or(0, |attrs| {
            attrs
                .iter()
                .map(|(name, v)| name.len() + Self::value_bytes(v))
                .sum()
        })
    }

    /// The answer DynamoDB gives to `request`, if it refuses it.
    fn refusal(&self, request: &serde_json::Value) -> Option<(u16, String)> {
        let actions = request["TransactItems"].as_array()?;
        if actions.len() > self.max_actions {
            return Some((400, serde_json::json!({
                "__type": "com.amazon.coral.validate#ValidationException",
                "message": format!("1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to {}", self.max_actions),
            }).to_string()));
        }
        let sizes: Vec<usize> = actions
            .iter()
            .map(|a| {
                if let Some(put) = a.get("Put") {
                    Self::item_bytes(&put["Item"])
                } else {
                    ["Update", "Delete", "ConditionCheck"]
                        .iter()
                        .find_map(|k| a.get(*k))
                        .map_or(0, |op| Self::item_bytes(&op["Key"]))
                }
            })
            .collect();
        if let Some(big) = sizes.iter().position(|s| *s > self.item_bytes) {
            let reasons: Vec<serde_json::Value> = (0..sizes.len())
                .map(|i| {
                    if i == big {
                        serde_json::json!({"Code": "ValidationError", "Message": "Item size has exceeded the maximum allowed size"})
                    } else {
                        serde_json::json!({"Code": "None"})
                    }
                })
                .collect();
            let codes: Vec<&str> = (0..sizes.len())
                .map(|i| if i == big { "ValidationError" } else { "None" })
                .collect();
            return Some((400, serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
                "CancellationReasons": reasons,
            }).to_string()));
        }
        if sizes.iter().sum::<usize>() > self.transaction_bytes {
            return Some((
                400,
                serde_json::json!({
                    "__type": "com.amazon.coral.validate#ValidationException",
                    "message": "Item size has exceeded the maximum allowed size",
                })
                .to_string(),
            ));
        }
        None
    }
}

impl Intercept for DynamoDbLimits {
    fn name(&self) -> &'static str {
        "DynamoDbLimits"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let transaction = cfg
            .load::<Metadata>()
            .is_some_and(|m| m.name() == "TransactWriteItems");
        if !transaction {
            return Ok(());
        }
        let Some(request) = context
            .request()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        else {
            return Ok(());
        };
        let Some((status, body)) = self.refusal(&request) else {
            return Ok(());
        };
        let request = context.request_mut();
        request
            .headers_mut()
            .insert("x-amz-target", "DynamoDB_20120810.ListTables");
        request.headers_mut().insert("content-length", "2");
        *request.body_mut() = aws_smithy_types::body::SdkBody::from("{}");
        cfg.interceptor_state()
            .store_put(RefusedAttempt(status, body));
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(RefusedAttempt(status, body)) = cfg.load::<RefusedAttempt>().cloned() else {
            return Ok(());
        };
        // One mark per attempt: a retry decides afresh.
        cfg.interceptor_state().unset::<RefusedAttempt>();
        let response = context.response_mut();
        *response.status_mut() = status.try_into()?;
        response
            .headers_mut()
            .insert("content-length", body.len().to_string());
        // The checksum was of the answer replaced.
        response.headers_mut().remove("x-amz-crc32");
        *response.body_mut() = aws_smithy_types::body::SdkBody::from(body);
        Ok(())
    }
}

/// Makes the `GlobalOrder` index lag while switched on: every Query of it answers no
/// items, as DynamoDB's index does before it has caught up with the table (GSIs are
/// eventually consistent; moto's never lag). The Query itself runs, only its answer is
/// replaced.
#[derive(Debug, Clone, Default)]
pub struct LaggingIndex {
    lagging: Arc<std::sync::atomic::AtomicBool>,
    hidden: Arc<std::sync::atomic::AtomicU32>,
}

/// Marks an attempt whose answer [`LaggingIndex`] replaces.
#[derive(Debug, Clone, Copy)]
struct HiddenAttempt;

impl aws_smithy_types::config_bag::Storable for HiddenAttempt {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl LaggingIndex {
    pub fn lag(&self) {
        self.lagging
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn catch_up(&self) {
        self.lagging
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many index reads answered nothing so far.
    pub fn hidden(&self) -> u32 {
        self.hidden.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Intercept for LaggingIndex {
    fn name(&self) -> &'static str {
        "LaggingIndex"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use std::sync::atomic::Ordering;
        let query = cfg.load::<Metadata>().is_some_and(|m| m.name() == "Query");
        if !query || !self.lagging.load(Ordering::SeqCst) {
            return Ok(());
        }
        let global_order = context
            .request()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .is_some_and(|r| r["IndexName"] == keys::GLOBAL_ORDER_INDEX);
        if global_order {
            cfg.interceptor_state().store_put(HiddenAttempt);
            self.hidden.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<HiddenAttempt>().is_none() {
            return Ok(());
        }
        cfg.interceptor_state().unset::<HiddenAttempt>();
        let body = r#"{"Count":0,"Items":[],"ScannedCount":0}"#;
        let response = context.response_mut();
        if response.status().as_u16() == 200 {
            response
                .headers_mut()
                .insert("content-length", body.len().to_string());
            response.headers_mut().remove("x-amz-crc32");
            *response.body_mut() = aws_smithy_types::body::SdkBody::from(body);
        }
        Ok(())
    }
}

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
        Projector::new(self.store.log().clone(), tables, projections)
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
            .filter(|i| s(i, "SK").starts_with("VERSION#"))
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

    pub async fn call(app: &App<DynamoEventLog>, request: Request) -> Answer {
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
