//! A pass over every projection: round-robin steps within a time budget, so that one far
//! behind does not keep the others waiting and an invocation ends within its timeout.

use tokio::time::Instant;

use super::engine::{lag_backoff, Advance, Pass, ProjectionEngine, Tracker, LAG_PATIENCE};
use super::port::{ProjectionStore, Slot};
use crate::{EventLog, StoreError};

impl<L: EventLog, S: ProjectionStore> ProjectionEngine<L, S> {
    /// Brings every projection towards `up_to` (default: the head) in rounds, one step of
    /// each unfinished projection per round, so that one far behind (a new projection) does
    /// not keep the others waiting. Stops after the round in which the invocation budget
    /// ran out; a projection still short of the target then, or whose index read keeps
    /// lagging, is left behind for the next pass (its checkpoint says where it is).
    pub async fn catch_up_all(&self, up_to: Option<u64>) -> Result<Pass, StoreError> {
        let started = Instant::now();
        let target = match up_to {
            Some(p) => p,
            None => self.head().await?,
        };
        let mut trackers: Vec<Tracker<'_>> = self
            .projections
            .iter()
            .map(|p| Tracker::new(p.as_ref(), Slot::Live(p.name().to_owned()), target))
            .collect();
        let mut pass = Pass {
            target,
            ..Pass::default()
        };
        let mut active: Vec<usize> = (0..trackers.len()).collect();
        while !active.is_empty() {
            let mut moved = false;
            let mut still = Vec::with_capacity(active.len());
            for i in active {
                let tracker = &mut trackers[i];
                // Boxed: the nested step futures are otherwise too deep for the compiler to
                // lay out inside the Lambda runtime's service future.
                match Box::pin(self.advance(tracker)).await {
                    Ok(Advance::AtTarget) => {}
                    Ok(Advance::Moved) => {
                        moved = true;
                        still.push(i);
                    }
                    Ok(Advance::Lagging(position)) => {
                        let since = *tracker.lagging_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < LAG_PATIENCE {
                            still.push(i);
                        } else {
                            tracing::warn!(
                                projection = tracker.projection.name(),
                                position,
                                "the global index lags; left for the next trigger"
                            );
                            pass.behind.push(tracker.projection.name().to_owned());
                        }
                    }
                    Err(err) => {
                        tracing::error!(projection = tracker.projection.name(), error = %err,
                            "projection failed");
                        pass.failed
                            .push((tracker.projection.name().to_owned(), err));
                    }
                }
            }
            active = still;
            if started.elapsed() >= self.invocation_budget {
                for &i in &active {
                    pass.behind.push(trackers[i].projection.name().to_owned());
                }
                break;
            }
            if !moved && !active.is_empty() {
                // Every projection left waits for the index.
                tokio::time::sleep(lag_backoff(1)).await;
            }
        }
        for tracker in trackers {
            tracing::info!(
                projection = tracker.projection.name(),
                target,
                applied = tracker.report.applied,
                rows = tracker.report.rows_written,
                parked = tracker.report.parked,
                "projected"
            );
            pass.reports
                .push((tracker.projection.name().to_owned(), tracker.report));
        }
        if !pass.behind.is_empty() {
            tracing::info!(behind = ?pass.behind, target,
                "projections left behind; the next pass continues");
        }
        Ok(pass)
    }
}
