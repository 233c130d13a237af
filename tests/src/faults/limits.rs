//! DynamoDB's documented limits on transactions and items, which moto does not enforce.
use std::sync::Arc;

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;

use super::{replace_answer, send_nothing};
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
        let transaction = super::operation(cfg) == "TransactWriteItems";
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
