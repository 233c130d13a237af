//! The sweep: sequences appends the stream path left behind, found through the sparse
//! `Unsequenced` index rather than a Scan.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use eventstore_core::{StoreError, StreamId, Timestamp};
use tracing::Instrument;

use super::{Sequencer, StreamHint, SweepReport, SWEEP_BUDGET, SWEEP_PAGE};
use crate::error::from_sdk;
use crate::io::{failed_condition, key, n, s, text, Item};
use crate::keys;
use crate::metrics::{self, Metrics};

impl Sequencer {
    /// Sequences every append that is still unsequenced `older_than` after it was made:
    /// what the stream path left behind (a batch it gave up on during an outage, records
    /// that expired while its trigger was off). It reads the sparse `Unsequenced` index,
    /// which holds only such appends' last events, keys only: an idle sweep costs one
    /// Query per shard, and a consistent read of the counter to finish a claim whose
    /// writer stopped half way ([`Sequencer::settle`]). Younger appends are left to the
    /// stream path.
    pub async fn sweep(&self, older_than: Duration) -> Result<SweepReport, StoreError> {
        let started = Instant::now();
        // A claim whose writer stopped before rolling it forward holds its positions back
        // from every reader until someone rolls it; when no append comes, this does.
        self.settle().await?;
        let cutoff = Timestamp::now().minus(older_than).to_string();
        let mut report = SweepReport::default();
        // Where each shard's next page starts. Shards take turns, a page each, and each page
        // is sequenced before the next is read: a large backlog (a day with the stream path
        // off) is worked off across sweeps, oldest first per shard, instead of being read
        // whole and timing out before the first commit.
        // Not the SDK's paginator: shards take turns and the time budget is checked between
        // pages, so each cursor is kept by hand.
        let mut cursors: Vec<(u8, Option<Item>)> =
            (0..keys::UNSEQUENCED_SHARDS).map(|s| (s, None)).collect();
        while !cursors.is_empty() && started.elapsed() < SWEEP_BUDGET {
            let mut next = Vec::with_capacity(cursors.len());
            for (shard, start) in cursors {
                if started.elapsed() >= SWEEP_BUDGET {
                    // Out of time mid-round: the loop ends; the next sweep starts afresh.
                    next.push((shard, start));
                    continue;
                }
                let out = self
                    .unsequenced_before(shard, &cutoff)
                    .limit(SWEEP_PAGE)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| from_sdk("Query", e))?;
                let hints: Vec<StreamHint> = out
                    .items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|item| {
                        let stream = text(item, keys::PK)
                            .and_then(keys::stream_of_pk)
                            .and_then(|s| StreamId::stored(s, "streamId").ok())?;
                        let version = text(item, keys::SK).and_then(keys::parse_version_sk)?;
                        Some(StreamHint { stream, version })
                    })
                    .collect();
                if !hints.is_empty() {
                    let sequenced = self.sequence(&hints).await?;
                    report.streams += sequenced.streams_behind;
                    report.events += sequenced.events;
                    report.max_lag_ms = report.max_lag_ms.max(sequenced.max_lag_ms);
                    for hint in &hints {
                        self.clear_unsequenced(hint).await?;
                    }
                }
                if let Some(key) = out.last_evaluated_key.filter(|k| !k.is_empty()) {
                    next.push((shard, Some(key)));
                }
            }
            cursors = next;
        }
        if report.streams > 0 {
            // Each is a stream whose appends the stream path did not deliver in time.
            tracing::warn!(
                streams = report.streams,
                events = report.events,
                "sweep sequenced stranded appends"
            );
        }
        Ok(report)
    }

    /// The Query of one partition of the sparse `Unsequenced` index for appends made before
    /// `cutoff`, keys only, oldest first: what the sweep sequences and `check` counts.
    pub(crate) fn unsequenced_before(&self, shard: u8, cutoff: &str) -> QueryFluentBuilder {
        self.log
            .client
            .query()
            .table_name(&self.log.table)
            .index_name(keys::UNSEQUENCED_INDEX)
            .key_condition_expression("#shard = :shard AND #created < :cutoff")
            .expression_attribute_names("#shard", keys::UNSEQUENCED_SHARD)
            .expression_attribute_names("#created", keys::CREATED_AT)
            .expression_attribute_values(":shard", n(u64::from(shard)))
            .expression_attribute_values(":cutoff", s(cutoff))
    }

    /// Takes a sequenced event out of the `Unsequenced` index if it is still in it: the
    /// sequencer's own update removes the attribute, but an event sequenced by an older
    /// version (during an upgrade) keeps it, and would be found by every sweep. Only an
    /// event that has its position is touched.
    async fn clear_unsequenced(&self, hint: &StreamHint) -> Result<(), StoreError> {
        let result = self
            .log
            .client
            .update_item()
            .table_name(&self.log.table)
            .set_key(Some(key(
                keys::stream_pk(hint.stream.as_str()),
                keys::version_sk(hint.version),
            )))
            .update_expression("REMOVE #unsequenced")
            .condition_expression("attribute_exists(#pos) AND attribute_exists(#unsequenced)")
            .expression_attribute_names("#pos", keys::GLOBAL_POSITION)
            .expression_attribute_names("#unsequenced", keys::UNSEQUENCED_SHARD)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already out of the index (the usual case): nothing to do.
            Err(e) if failed_condition(&e) => Ok(()),
            Err(e) => Err(from_sdk("UpdateItem", e)),
        }
    }

    /// [`Sequencer::sweep`] as its triggers run it (the schedule, `make dev`'s timer): with
    /// its metrics emitted.
    pub async fn scheduled_sweep(&self, older_than: Duration) -> Result<SweepReport, StoreError> {
        let span = tracing::info_span!("sequencer.sweep");
        let report = match Box::pin(self.sweep(older_than).instrument(span)).await {
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
            .put(&metrics::EVENTS_SEQUENCED, report.events as f64);
        if let Some(lag) = report.max_lag_ms {
            metrics.put(&metrics::SEQUENCING_LAG, lag as f64);
        }
        metrics.emit();
        Ok(report)
    }
}
