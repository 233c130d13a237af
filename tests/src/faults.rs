//! SDK interceptors that give the local DynamoDB behaviour it lacks, modelled on AWS's
//! documented answers: lost write answers, throttled transactions, transaction limits, a
//! lagging index; and a request counter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use eventstore_dynamodb::keys;

/// Marks an attempt whose request was not sent: the answer to give instead.
#[derive(Debug, Clone)]
struct Replaced(u16, String);

impl aws_smithy_types::config_bag::Storable for Replaced {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Turns the request into a harmless `ListTables`, so that nothing is written, and marks
/// the attempt so that [`replace_answer`] answers it with `status` and `body`.
fn send_nothing(
    context: &mut BeforeTransmitInterceptorContextMut<'_>,
    cfg: &mut ConfigBag,
    status: u16,
    body: String,
) {
    let request = context.request_mut();
    request
        .headers_mut()
        .insert("x-amz-target", "DynamoDB_20120810.ListTables");
    request.headers_mut().insert("content-length", "2");
    *request.body_mut() = aws_smithy_types::body::SdkBody::from("{}");
    cfg.interceptor_state().store_put(Replaced(status, body));
}

/// Gives an attempt [`send_nothing`] marked the answer it was meant to get.
fn replace_answer(
    context: &mut BeforeDeserializationInterceptorContextMut<'_>,
    cfg: &mut ConfigBag,
) -> Result<(), BoxError> {
    let Some(Replaced(status, body)) = cfg.load::<Replaced>().cloned() else {
        return Ok(());
    };
    // One mark per attempt: a retry decides afresh.
    cfg.interceptor_state().unset::<Replaced>();
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
        send_nothing(context, cfg, 400, body.to_string());
        self.cancelled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        replace_answer(context, cfg)
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
        send_nothing(context, cfg, status, body);
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
        replace_answer(context, cfg)
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
