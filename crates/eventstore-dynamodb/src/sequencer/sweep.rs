//! The sweep: finishes what the stream path left. It settles the counter (a claim whose
//! writer stopped half way is rolled forward) and replays the batches the stream path gave
//! up on (`trigger::failed`).

use std::time::Instant;

use eventstore_core::StoreError;
use tracing::Instrument;

use super::{Sequencer, SweepReport};
use crate::metrics::{self, Metrics};

impl Sequencer {
    /// Rolls forward the claim the counter holds, as far as it is not rolled forward yet
    /// ([`Sequencer::settle`]), then replays the failed batches waiting in the queue, each
    /// read back from the table's stream and sequenced like any batch. An idle sweep is one
    /// consistent `GetItem` of the counter, one `BatchGetItem` of its claim's events (one
    /// per 100; none if this process rolled that claim forward) and one `ReceiveMessage`.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let started = Instant::now();
        let _turn = self.gate.lock().await;
        // A claim whose writer stopped before rolling it forward holds its positions back
        // from every reader until someone rolls it; when no append comes, this does.
        self.settle_in_turn().await?;
        let mut report = SweepReport::default();
        if let Some(failed) = &self.failed {
            self.replay_failed(failed, started, &mut report).await?;
        }
        if report.batches > 0 {
            // Each is a batch the stream path gave up on, now sequenced.
            tracing::warn!(
                batches = report.batches,
                streams = report.streams,
                events = report.events,
                "sweep replayed failed stream batches"
            );
        }
        Ok(report)
    }

    /// [`Sequencer::sweep`] as its triggers run it (the schedule, `make dev`'s timer): with
    /// its metrics emitted.
    pub async fn scheduled_sweep(&self) -> Result<SweepReport, StoreError> {
        let span = tracing::info_span!("sequencer.sweep");
        let report = match Box::pin(self.sweep().instrument(span)).await {
            Ok(report) => report,
            Err(err) => {
                // Counted with the stream path's failures: SequencingFailuresAlarm fires if
                // the sweep keeps failing too.
                let mut failed = Metrics::new();
                failed.put(&metrics::SEQUENCING_FAILURES, 1.0);
                failed.emit();
                return Err(err);
            }
        };
        let mut metrics = Metrics::new();
        metrics
            .put(&metrics::STRANDED_STREAMS, report.streams as f64)
            .put(&metrics::UNREPLAYABLE_BATCHES, report.unreplayable as f64)
            .put(&metrics::EVENTS_SEQUENCED, report.events as f64);
        if let Some(lag) = report.max_lag_ms {
            metrics.put(&metrics::SEQUENCING_LAG, lag as f64);
        }
        metrics.emit();
        Ok(report)
    }
}
