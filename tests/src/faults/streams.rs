//! A DynamoDB stream whose records have expired. DynamoDB Streams keeps records 24 hours;
//! reading from a sequence number older than that fails with `TrimmedDataAccessException`
//! (the DynamoDB Streams API reference, GetShardIterator and GetRecords). The local
//! DynamoDB never trims, so this interceptor answers both calls that way.

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;

use super::{operation, replace_answer, send_nothing};

#[derive(Debug, Clone, Default)]
pub struct TrimmedStream;

impl TrimmedStream {
    /// A streams client on the local endpoint whose records have all expired.
    pub async fn client() -> aws_sdk_dynamodbstreams::Client {
        let local = eventstore_dynamodb::trigger::local::streams_client_from_env().await;
        let config = local.config().to_builder().interceptor(Self).build();
        aws_sdk_dynamodbstreams::Client::from_conf(config)
    }
}

impl Intercept for TrimmedStream {
    fn name(&self) -> &'static str {
        "TrimmedStream"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if matches!(operation(cfg), "GetShardIterator" | "GetRecords") {
            let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException","message":"The operation attempted to read past the oldest stream record in a shard."}"#;
            send_nothing(context, cfg, 400, body.to_owned());
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        replace_answer(context, cfg)
    }
}
