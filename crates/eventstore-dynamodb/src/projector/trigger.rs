//! The projector's triggers: the counter's stream records, the scheduled catch-up, and the
//! local stand-ins for both.

use super::*;

impl Projector {
    /// The Lambda entry point for the counter's stream records: brings every projection up
    /// to the highest position the batch's records name (see [`Projector::catch_up_all`]).
    /// If a projection fails, the first record is reported, so the event source retries
    /// (what committed is not repeated). One left behind, out of time or because the index
    /// lags, does not fail the batch: retrying it could not do more than the scheduled
    /// catch-up does, and Lambda's retries run out.
    pub async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        let up_to = event
            .records
            .iter()
            .filter_map(|r| match r.change.new_image.get(keys::COUNTER_LAST) {
                Some(serde_dynamo::AttributeValue::N(v)) => v.parse::<u64>().ok(),
                _ => None,
            })
            .max();
        let Some(up_to) = up_to else {
            return Ok(DynamoDbEventResponse::default());
        };
        let pass = Box::pin(self.catch_up_all(Some(up_to))).await?;
        emit_pass_metrics(&pass);
        match pass.failed.into_iter().next() {
            None => Ok(DynamoDbEventResponse::default()),
            Some((_, err)) => retry_batch(&event, err),
        }
    }

    /// The scheduled catch-up (`infra/template.yaml`'s `CatchUp` schedule; locally a timer):
    /// brings every projection towards the head whether or not new events arrive, so one
    /// left behind reaches the head by itself once the index has caught up.
    pub async fn handle_scheduled(&self) -> Result<Pass, StoreError> {
        let pass = Box::pin(self.catch_up_all(None)).await?;
        emit_pass_metrics(&pass);
        // Once a minute, each projection's distance from the head: what the lag alarm
        // watches (one consistent read per projection).
        for projection in &self.projections {
            let position = self.checkpoint(projection.name()).await?.position;
            let mut lag = Metrics::new().dimension("Projection", projection.name());
            lag.put(
                &metrics::PROJECTION_LAG,
                pass.target.saturating_sub(position) as f64,
            );
            lag.emit();
        }
        match pass.failed.first() {
            None => Ok(pass),
            Some((name, err)) => Err(StoreError::Unavailable {
                message: format!("projection {name} failed: {err}"),
                source: None,
            }),
        }
    }

    /// Whatever the Lambda function is invoked with: a batch of stream records (the
    /// response to it is Lambda's partial batch response), or the scheduled event.
    pub async fn invoke(&self, payload: Value) -> Result<Value, StoreError> {
        if payload.get("Records").is_some() {
            let event: Event = serde_json::from_value(payload)
                .map_err(|e| StoreError::internal("decoding a DynamoDB stream event", e))?;
            // Boxed, as the catch-ups inside: the Lambda runtime's service future must stay
            // within the compiler's layout depth.
            let response = Box::pin(self.handle(event)).await?;
            return serde_json::to_value(response)
                .map_err(|e| StoreError::internal("encoding the batch response", e));
        }
        if payload.get("source").and_then(Value::as_str) == Some("aws.events") {
            Box::pin(self.handle_scheduled()).await?;
            return Ok(Value::Null);
        }
        Err(StoreError::corrupt(
            "the projector was invoked with neither stream records nor a scheduled event",
        ))
    }

    /// Runs the projector locally as the deployed stack does, for as long as the process
    /// lives: the counter's stream records through the local event source, and the
    /// scheduled catch-up on a timer (every [`Projector::with_local_catch_up_every`]).
    pub async fn run_locally(self) {
        let every = self.local_catch_up_every;
        let timer = {
            let projector = self.clone();
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(err) = projector.handle_scheduled().await {
                        tracing::warn!(error = %err, "scheduled catch-up failed");
                    }
                }
            }
        };
        tokio::join!(run_locally(self, "projector"), timer);
    }

    /// The local event source that feeds this projector as the template's mapping does.
    pub async fn local_source(&self) -> Result<LocalEventSource, StoreError> {
        LocalEventSource::for_table(self.store.log(), COUNTER_FILTER).await
    }
}
