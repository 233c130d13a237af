//! SDK interceptors that give the local DynamoDB behaviour it lacks, modelled on AWS's
//! documented answers: lost write answers and throttled transactions (`answers`),
//! transaction and item limits (`limits`), a lagging index (`index`), throttled reads
//! (`throttle`), expired stream records (`streams`); and a request counter.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

mod answers;
mod index;
mod limits;
mod streams;
mod throttle;

pub use answers::{CancelTransactions, LoseWriteAnswers};
pub use index::LaggingIndex;
pub use limits::DynamoDbLimits;
pub use streams::TrimmedStream;
pub use throttle::Throttle;
/// The DynamoDB operation an attempt is for (`PutItem`, `Query`, ...); empty if unknown.
pub(crate) fn operation(cfg: &ConfigBag) -> &str {
    cfg.load::<Metadata>().map_or("", |m| m.name())
}

/// Marks an attempt whose request was not sent: the answer to give instead.
#[derive(Debug, Clone)]
struct Replaced(u16, String);

impl aws_smithy_types::config_bag::Storable for Replaced {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Turns the request into a harmless `ListTables`, so that nothing is written, and marks
/// the attempt so that [`replace_answer`] answers it with `status` and `body`.
pub(super) fn send_nothing(
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
pub(super) fn replace_answer(
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
        let operation = operation(cfg).to_owned();
        *self.0.lock().unwrap().entry(operation).or_default() += 1;
        Ok(())
    }
}
