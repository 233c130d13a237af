//! Reads DynamoDB refuses with `ProvisionedThroughputExceededException`, as it does for a
//! hot partition or a table over its capacity (moto never throttles).
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;

use super::{replace_answer, send_nothing};

/// While on, every `Query` is answered with a throttling error (the SDK's retries included).
#[derive(Debug, Clone, Default)]
pub struct ThrottleQueries {
    on: Arc<AtomicBool>,
    throttled: Arc<AtomicU32>,
}

impl ThrottleQueries {
    pub fn start(&self) {
        self.on.store(true, Ordering::SeqCst);
    }

    /// DynamoDB has caught up.
    pub fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// How many Query attempts were refused so far.
    pub fn throttled(&self) -> u32 {
        self.throttled.load(Ordering::SeqCst)
    }
}

impl Intercept for ThrottleQueries {
    fn name(&self) -> &'static str {
        "ThrottleQueries"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let query = super::operation(cfg) == "Query";
        if query && self.on.load(Ordering::SeqCst) {
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
