//! EventBridge as the publisher's [`EventBus`]: one `PutEvents` per batch, one outcome per
//! entry. The endpoint comes from the SDK's standard variables (`AWS_ENDPOINT_URL_EVENTBRIDGE`
//! or `AWS_ENDPOINT_URL` for a local one), as every other client of the store.
#![forbid(unsafe_code)]

use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use eventstore_core::publish::{BusEntry, BusLimits, EntryOutcome, EventBus, EVENTBRIDGE_LIMITS};
use eventstore_core::StoreError;

/// One EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// A client from the SDK's environment, for bus `bus` (a name or an ARN).
    pub async fn from_env(bus: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), bus)
    }

    pub fn name(&self) -> &str {
        &self.bus
    }
}

impl EventBus for EventBridgeBus {
    fn limits(&self) -> BusLimits {
        EVENTBRIDGE_LIMITS
    }

    async fn put(&self, entries: &[BusEntry]) -> Result<Vec<EntryOutcome>, StoreError> {
        let request = entries.iter().map(|e| {
            PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus)
                .source(&e.source)
                .detail_type(&e.detail_type)
                .detail(&e.detail)
                .set_resources(Some(e.resources.clone()))
                .build()
        });
        let out = self
            .client
            .put_events()
            .set_entries(Some(request.collect()))
            .send()
            .await
            .map_err(from_sdk)?;
        // One result per entry, in order: an EventId for those taken, an ErrorCode for
        // those not. Throttling and internal failures pass; any other code (InvalidArgument,
        // MalformedDetail, NotAuthorizedForSourceException, ...) will be the same next time.
        Ok(out
            .entries()
            .iter()
            .map(|r| match r.error_code() {
                None => EntryOutcome::Published,
                Some(code) => {
                    let described = format!("{code}: {}", r.error_message().unwrap_or_default());
                    if matches!(code, "ThrottlingException" | "InternalFailure") {
                        EntryOutcome::Failed { code: described }
                    } else {
                        EntryOutcome::Refused { code: described }
                    }
                }
            })
            .collect())
    }
}

/// A request that failed as a whole. Throttling, service and network failures are worth
/// retrying; the rest (access denied, a missing bus) is the deployment's, and also fails
/// the run, so that the checkpoint stays and the alarms on the failure queue fire.
fn from_sdk<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().unwrap_or("no error code").to_owned();
    let retryable = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || matches!(
        code.as_str(),
        "ThrottlingException" | "InternalException" | "InternalFailure" | "ServiceUnavailable"
    );
    let message = format!("EventBridge PutEvents failed: {code}");
    if retryable {
        StoreError::unavailable(message, err)
    } else {
        StoreError::internal(message, err)
    }
}
