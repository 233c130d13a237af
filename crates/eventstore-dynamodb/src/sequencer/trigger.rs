//! The sequencer function's entry points: stream batches and the sweep schedule.

use super::*;

impl Sequencer {
    /// The Lambda entry point for both triggers: a stream batch answers with
    /// `batchItemFailures`, a sweep with its report.
    pub async fn invoke(&self, invocation: Invocation) -> Result<serde_json::Value, StoreError> {
        // Boxed: both futures are deep, and the Lambda's future holding them inline goes
        // past the compiler's layout depth limit.
        let answer = match invocation {
            Invocation::Stream(event) => serde_json::to_value(Box::pin(self.handle(*event)).await?),
            Invocation::Sweep { sweep } => serde_json::to_value(
                self.scheduled_sweep(Duration::from_secs(sweep.older_than_seconds))
                    .await?,
            ),
        };
        answer.map_err(|e| StoreError::internal("encoding the sequencer's answer", e))
    }

    /// The Lambda entry point: sequences the streams the batch's records hint at.
    ///
    /// On failure the whole batch is retried ([`retry_batch`]).
    pub async fn handle(&self, event: Event) -> Result<DynamoDbEventResponse, StoreError> {
        let hints: Vec<StreamHint> = event.records.iter().filter_map(hint_of).collect();
        match self.sequence(&hints).await {
            Ok(report) => {
                let mut metrics = Metrics::new();
                metrics
                    .put(&metrics::EVENTS_SEQUENCED, report.events as f64)
                    .put(&metrics::LOST_ROUNDS, report.lost_rounds as f64);
                if report.transactions > 0 {
                    metrics.put(
                        &metrics::EVENTS_PER_TRANSACTION,
                        report.events as f64 / report.transactions as f64,
                    );
                }
                if let Some(lag) = report.max_lag_ms {
                    metrics.put(&metrics::SEQUENCING_LAG, lag as f64);
                }
                metrics.emit();
                tracing::info!(
                    records = event.records.len(),
                    streams = hints.len(),
                    events = report.events,
                    transactions = report.transactions,
                    lost_rounds = report.lost_rounds,
                    "sequenced"
                );
                Ok(DynamoDbEventResponse::default())
            }
            Err(err) => {
                let mut failed = Metrics::new();
                failed.put(&metrics::SEQUENCING_FAILURES, 1.0);
                failed.emit();
                tracing::error!(error = %err, records = event.records.len(), "sequencing failed");
                retry_batch(&event, err)
            }
        }
    }
}
