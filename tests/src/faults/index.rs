//! A `GlobalOrder` index that lags behind the table, as a GSI may.
use std::sync::Arc;

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use eventstore_dynamodb::keys;

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
        let query = super::operation(cfg) == "Query";
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
