//! Requests DynamoDB refuses with `ProvisionedThroughputExceededException`, as it does for
//! a hot partition or a table over its capacity (moto never throttles).
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;

use super::{replace_answer, send_nothing};

/// While on, every request for one of its operations is answered with a throttling error
/// (the SDK's retries included), and sends nothing.
#[derive(Debug, Clone)]
pub struct Throttle {
    operations: &'static [&'static str],
    /// Requests of its operations still let through before it throttles.
    spared: Arc<AtomicU32>,
    on: Arc<AtomicBool>,
    throttled: Arc<AtomicU32>,
}

impl Throttle {
    /// Throttles `operations` (`Query`, `UpdateItem`, ...) once started.
    pub fn of(operations: &'static [&'static str]) -> Self {
        Self {
            operations,
            spared: Arc::default(),
            on: Arc::default(),
            throttled: Arc::default(),
        }
    }

    /// Once started, lets the next `n` requests through first: a process that stops part
    /// way through what it writes.
    pub fn after(self, n: u32) -> Self {
        self.spared.store(n, Ordering::SeqCst);
        self
    }

    pub fn start(&self) {
        self.on.store(true, Ordering::SeqCst);
    }

    /// DynamoDB has caught up.
    pub fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// How many attempts were refused so far.
    pub fn throttled(&self) -> u32 {
        self.throttled.load(Ordering::SeqCst)
    }
}

impl Intercept for Throttle {
    fn name(&self) -> &'static str {
        "Throttle"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ours = self.operations.contains(&super::operation(cfg));
        let spared = ours
            && self.on.load(Ordering::SeqCst)
            && self
                .spared
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if ours && !spared && self.on.load(Ordering::SeqCst) {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#;
            send_nothing(context, cfg, 400, body.to_owned());
        }
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
