//! Write answers lost after the write happened, and transactions cancelled as throttled or
//! contended.
use std::sync::Arc;

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;

use super::{replace_answer, send_nothing};
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
        let write = matches!(super::operation(cfg), "PutItem" | "TransactWriteItems");
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
        let transaction = super::operation(cfg) == "TransactWriteItems";
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
