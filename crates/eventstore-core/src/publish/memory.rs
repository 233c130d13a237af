//! An event bus and a publisher checkpoint store in memory, for tests of the publisher and
//! of code that publishes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{BusEntry, BusLimits, EntryOutcome, EventBus, ParkedEntry, PublisherStore};
use crate::StoreError;

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::corrupt("in-memory publisher state poisoned by a panic"))
}

/// A bus that records what it was sent. Scripted failures make it fail chosen entries of
/// the next requests, or whole requests, as a throttled EventBridge does.
#[derive(Debug, Clone)]
pub struct InMemoryBus {
    limits: BusLimits,
    state: Arc<Mutex<BusState>>,
}

#[derive(Debug, Default)]
struct BusState {
    published: Vec<BusEntry>,
    requests: Vec<usize>,
    script: VecDeque<Script>,
}

#[derive(Debug)]
enum Script {
    FailEntries(Vec<usize>),
    RefuseEntries(Vec<usize>),
    FailRequest,
}

impl InMemoryBus {
    pub fn new(limits: BusLimits) -> Self {
        Self {
            limits,
            state: Arc::default(),
        }
    }

    /// The next request fails the entries at these indexes (of that request).
    pub fn fail_entries(&self, indexes: &[usize]) {
        if let Ok(mut s) = self.state.lock() {
            s.script.push_back(Script::FailEntries(indexes.to_vec()));
        }
    }

    /// The next request refuses the entries at these indexes for good (malformed, say).
    pub fn refuse_entries(&self, indexes: &[usize]) {
        if let Ok(mut s) = self.state.lock() {
            s.script.push_back(Script::RefuseEntries(indexes.to_vec()));
        }
    }

    /// The next request fails as a whole (throttled).
    pub fn fail_request(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.script.push_back(Script::FailRequest);
        }
    }

    /// Every entry published, in the order the bus took them.
    pub fn published(&self) -> Vec<BusEntry> {
        self.state
            .lock()
            .map(|s| s.published.clone())
            .unwrap_or_default()
    }

    /// The number of entries in each request, in order.
    pub fn requests(&self) -> Vec<usize> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }
}

impl EventBus for InMemoryBus {
    fn limits(&self) -> BusLimits {
        self.limits
    }

    async fn put(&self, entries: &[BusEntry]) -> Result<Vec<EntryOutcome>, StoreError> {
        let mut s = lock(&self.state)?;
        let bytes: usize = entries.iter().map(BusEntry::size).sum();
        if entries.is_empty() || entries.len() > self.limits.entries || bytes > self.limits.bytes {
            return Err(StoreError::corrupt(format!(
                "a request of {} entries and {bytes} bytes is outside the bus's limits",
                entries.len()
            )));
        }
        s.requests.push(entries.len());
        let (failing, refusing) = match s.script.pop_front() {
            Some(Script::FailRequest) => {
                return Err(StoreError::Unavailable {
                    message: "ThrottlingException".into(),
                    source: None,
                })
            }
            Some(Script::FailEntries(indexes)) => (indexes, Vec::new()),
            Some(Script::RefuseEntries(indexes)) => (Vec::new(), indexes),
            None => (Vec::new(), Vec::new()),
        };
        let mut outcomes = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if failing.contains(&i) {
                outcomes.push(EntryOutcome::Failed {
                    code: "ThrottlingException".into(),
                });
            } else if refusing.contains(&i) {
                outcomes.push(EntryOutcome::Refused {
                    code: "MalformedDetail".into(),
                });
            } else {
                s.published.push(entry.clone());
                outcomes.push(EntryOutcome::Published);
            }
        }
        Ok(outcomes)
    }
}

/// One publisher's checkpoint and parked events.
type Publication = (u64, Vec<ParkedEntry>);

/// Publisher checkpoints and parked events in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPublisherStore {
    state: Arc<Mutex<BTreeMap<String, Publication>>>,
}

impl InMemoryPublisherStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl PublisherStore for InMemoryPublisherStore {
    async fn checkpoint(&self, publisher: &str) -> Result<u64, StoreError> {
        Ok(lock(&self.state)?.get(publisher).map_or(1, |(p, _)| *p))
    }

    async fn advance(
        &self,
        publisher: &str,
        from: u64,
        to: u64,
        parked: &[ParkedEntry],
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state)?;
        let (position, list) = state.entry(publisher.to_owned()).or_insert((1, Vec::new()));
        for p in parked {
            if !list.iter().any(|q| q.position == p.position) {
                list.push(p.clone());
            }
        }
        if *position != from {
            return Ok(false);
        }
        *position = to;
        Ok(true)
    }

    async fn parked(&self, publisher: &str) -> Result<Vec<ParkedEntry>, StoreError> {
        Ok(lock(&self.state)?
            .get(publisher)
            .map(|(_, list)| list.clone())
            .unwrap_or_default())
    }
}
