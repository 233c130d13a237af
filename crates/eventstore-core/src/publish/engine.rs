//! The publisher: checkpoint, read a page, send it in the bus's batches, retry what failed,
//! park what can never be sent, move the checkpoint.

use std::time::{Duration, Instant};

use tracing::Instrument;

use super::{BusEntry, EntryOutcome, EventBus, ParkedEntry, PublisherStore};
use crate::{EventLog, EventStore, GlobalFilter, RecordedEvent, StoreError};

/// What a publisher publishes, and as what.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherConfig {
    /// The checkpoint's name.
    pub name: String,
    /// The entries' `Source`.
    pub source: String,
    /// All events, or one type's or one category's.
    pub filter: GlobalFilter,
    /// Events read per page (each page is published before the checkpoint moves).
    pub page: usize,
    /// Sends of a batch before its still-failing entries fail the run (which is retried
    /// later from the unmoved checkpoint).
    pub attempts: u32,
}

impl PublisherConfig {
    pub fn new(name: impl Into<String>, source: impl Into<String>, filter: GlobalFilter) -> Self {
        Self {
            name: name.into(),
            source: source.into(),
            filter,
            page: 100,
            attempts: 5,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub published: u64,
    pub parked: u64,
    /// Requests to the bus, retries included.
    pub requests: u64,
    /// The checkpoint the run left (the next position to publish).
    pub checkpoint: u64,
    /// It stopped because nothing more was there to publish (rather than at `until`, its
    /// budget, or another run's move). A filtered publisher's checkpoint stays at its last
    /// event while others follow, so only this tells that it is not behind.
    pub caught_up: bool,
}

/// Publishes the global order (or a filtered part) to an [`EventBus`].
#[derive(Debug, Clone)]
pub struct Publisher<L, B, S> {
    store: EventStore<L>,
    bus: B,
    checkpoints: S,
    config: PublisherConfig,
}

/// The pause before the first retry of a batch's failed entries; doubled each time.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// How long a run triggered by the counter first waits for the positions the counter
/// names to be readable, and the longest wait between reads (doubling from the first).
const FIRST_LAG_WAIT: Duration = Duration::from_millis(25);
const MAX_LAG_WAIT: Duration = Duration::from_millis(400);

impl<L: EventLog, B: EventBus, S: PublisherStore> Publisher<L, B, S> {
    pub fn new(store: EventStore<L>, bus: B, checkpoints: S, config: PublisherConfig) -> Self {
        Self {
            store,
            bus,
            checkpoints,
            config,
        }
    }

    pub fn config(&self) -> &PublisherConfig {
        &self.config
    }

    pub fn store(&self) -> &EventStore<L> {
        &self.store
    }

    pub fn bus(&self) -> &B {
        &self.bus
    }

    pub fn checkpoints(&self) -> &S {
        &self.checkpoints
    }

    /// Publishes page after page from the checkpoint until there is nothing more (or the
    /// checkpoint passes `until`, or `budget` is spent), each page sent in full before the
    /// checkpoint moves past it. An error leaves the checkpoint where the last complete page
    /// left it: the next run sends the failed page again (at least once). The error carries
    /// what the run did before it, so that nothing it published or parked goes uncounted.
    pub async fn publish(
        &self,
        until: Option<u64>,
        budget: Duration,
    ) -> Result<PublishReport, PublishFailed> {
        let mut report = PublishReport::default();
        match self.run(until, budget, &mut report).await {
            Ok(()) => Ok(report),
            Err(source) => Err(PublishFailed { report, source }),
        }
    }

    async fn run(
        &self,
        until: Option<u64>,
        budget: Duration,
        report: &mut PublishReport,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let name = self.config.name.as_str();
        // Read once: after that, this run's own `advance` is what moves it (conditioned on
        // it, so a run that another moved past stops there).
        let mut from = self.checkpoints.checkpoint(name).await?;
        let mut lag_wait = FIRST_LAG_WAIT;
        loop {
            report.checkpoint = from;
            if until.is_some_and(|u| from > u) || started.elapsed() >= budget {
                return Ok(());
            }
            let page = self
                .store
                .read_global(&self.config.filter, Some(from), self.config.page)
                .await?;
            if page.events.is_empty() {
                // A type or category read moves `next` over the other events: the
                // checkpoint keeps that progress, so no run reads those positions again.
                if page.next > from {
                    if !self.checkpoints.advance(name, from, page.next, &[]).await? {
                        return Ok(());
                    }
                    report.checkpoint = page.next;
                    from = page.next;
                }
                if page.more {
                    continue;
                }
                // The counter's record named positions up to `until`, and they are not all
                // readable yet: the sequencer writes positions just after the counter, and
                // the index follows. Wait a little, within the budget, and read again.
                if until.is_some_and(|u| from <= u) && started.elapsed() + lag_wait < budget {
                    tokio::time::sleep(lag_wait).await;
                    lag_wait = (lag_wait * 2).min(MAX_LAG_WAIT);
                    continue;
                }
                report.caught_up = until.is_none_or(|u| from > u);
                return Ok(());
            }
            lag_wait = FIRST_LAG_WAIT;
            let (entries, mut parked) = self.entries(&page.events)?;
            let span = tracing::info_span!("publisher.page", from, entries = entries.len());
            let refused = self.send(&entries, report).instrument(span).await?;
            let published = entries.len() - refused.len();
            parked.extend(refused);
            parked.sort_by_key(|p| p.position);
            for p in &parked {
                tracing::error!(
                    publisher = name,
                    position = p.position,
                    event_id = %p.event_id,
                    reason = %p.reason,
                    "event parked: the bus cannot take it"
                );
            }
            if !self
                .checkpoints
                .advance(name, from, page.next, &parked)
                .await?
            {
                // Another run published this page too and moved on: leave the rest to it.
                return Ok(());
            }
            report.published += published as u64;
            report.parked += parked.len() as u64;
            report.checkpoint = page.next;
            from = page.next;
        }
    }

    /// The page's entries, and the events no bus request could carry.
    fn entries(
        &self,
        events: &[RecordedEvent],
    ) -> Result<(Vec<BusEntry>, Vec<ParkedEntry>), StoreError> {
        let limit = self.bus.limits().bytes;
        let mut entries = Vec::with_capacity(events.len());
        let mut parked = Vec::new();
        for event in events {
            let position = event.global_position.ok_or_else(|| {
                StoreError::corrupt("a global read returned an unpositioned event")
            })?;
            let entry = BusEntry {
                position,
                event_id: event.event_id,
                source: self.config.source.clone(),
                detail_type: event.event_type.as_str().to_owned(),
                detail: serde_json::to_string(event)
                    .map_err(|e| StoreError::internal("encoding an event for the bus", e))?,
                resources: vec![format!("{}:stream/{}", self.config.source, event.stream_id)],
                stream_id: event.stream_id.to_string(),
            };
            if entry.size() > limit {
                parked.push(ParkedEntry {
                    position,
                    event_id: event.event_id,
                    stream_id: event.stream_id.to_string(),
                    event_type: event.event_type.as_str().to_owned(),
                    reason: format!(
                        "the entry is {} bytes, over the bus's limit of {limit}",
                        entry.size()
                    ),
                });
            } else {
                entries.push(entry);
            }
        }
        Ok((entries, parked))
    }

    /// Sends `entries` in position order, in batches within the bus's limits; of a batch,
    /// only the entries the bus failed are sent again. The entries the bus refused for good
    /// come back, to be parked.
    async fn send(
        &self,
        entries: &[BusEntry],
        report: &mut PublishReport,
    ) -> Result<Vec<ParkedEntry>, StoreError> {
        let limits = self.bus.limits();
        let mut refused = Vec::new();
        let mut rest = entries;
        while !rest.is_empty() {
            let mut count = 0;
            let mut bytes = 0;
            while count < rest.len()
                && count < limits.entries
                && bytes + rest[count].size() <= limits.bytes
            {
                bytes += rest[count].size();
                count += 1;
            }
            let (batch, after) = rest.split_at(count.max(1));
            refused.extend(self.send_batch(batch, report).await?);
            rest = after;
        }
        Ok(refused)
    }

    async fn send_batch(
        &self,
        batch: &[BusEntry],
        report: &mut PublishReport,
    ) -> Result<Vec<ParkedEntry>, StoreError> {
        let mut pending: Vec<BusEntry> = batch.to_vec();
        let mut refused = Vec::new();
        let mut pause = FIRST_RETRY;
        let mut last_codes = Vec::new();
        for attempt in 1..=self.config.attempts.max(1) {
            report.requests += 1;
            match self.bus.put(&pending).await {
                Ok(outcomes) if outcomes.len() == pending.len() => {
                    last_codes.clear();
                    let mut failed = Vec::new();
                    for (entry, outcome) in pending.into_iter().zip(outcomes) {
                        match outcome {
                            EntryOutcome::Published => {}
                            EntryOutcome::Failed { code } => {
                                last_codes.push(code);
                                failed.push(entry);
                            }
                            EntryOutcome::Refused { code } => refused.push(ParkedEntry {
                                position: entry.position,
                                event_id: entry.event_id,
                                stream_id: entry.stream_id,
                                event_type: entry.detail_type,
                                reason: format!("the bus refused it: {code}"),
                            }),
                        }
                    }
                    pending = failed;
                    if pending.is_empty() {
                        return Ok(refused);
                    }
                }
                Ok(outcomes) => {
                    return Err(StoreError::corrupt(format!(
                        "the bus answered {} outcomes for {} entries",
                        outcomes.len(),
                        pending.len()
                    )))
                }
                Err(err @ StoreError::Unavailable { .. }) => last_codes = vec![err.to_string()],
                Err(err) => return Err(err),
            }
            if attempt < self.config.attempts {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
        Err(StoreError::Unavailable {
            message: format!(
                "the bus did not take {} entries (positions {}..) after {} attempts: {}",
                pending.len(),
                pending.first().map_or(0, |e| e.position),
                self.config.attempts,
                last_codes.join(", ")
            ),
            source: None,
        })
    }
}

/// A publishing run that failed, with what it had done before (published and parked
/// events are counted even so).
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct PublishFailed {
    pub report: PublishReport,
    #[source]
    pub source: StoreError,
}
