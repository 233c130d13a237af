//! A [`ProjectionStore`] and [`SubscriptionStore`] in memory: a projection author tests a
//! projection end to end with [`crate::ProjectionEngine`] and no DynamoDB, and the engine's
//! own tests run in milliseconds. Conditions are checked as DynamoDB's transactions check
//! them: a write whose checkpoint is no longer as read changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::projection::port::{
    Commit, CommitLimits, Parked, ParkedEvent, ProjectionStore, Slot, SubscriptionStore,
};
use crate::projection::{Checkpoint, RowId, Rows};
use crate::StoreError;

/// A projection's row in one generation.
type RowKey = (String, u64, RowId);

#[derive(Debug, Default)]
struct State {
    checkpoints: BTreeMap<Slot, Checkpoint>,
    rows: BTreeMap<RowKey, Value>,
    parked: BTreeMap<(String, u64, u64), Parked>,
    subscriptions: BTreeMap<String, u64>,
}

/// Projection rows, checkpoints, parked events and subscription checkpoints in memory. A
/// clone is a handle to the same store.
#[derive(Debug, Clone)]
pub struct InMemoryProjections {
    state: Arc<Mutex<State>>,
    limits: CommitLimits,
}

impl Default for InMemoryProjections {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryProjections {
    /// A store with DynamoDB's limits: 99 rows and 3 MiB per commit, 400 KB per row.
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            limits: CommitLimits {
                rows: 99,
                bytes: 3 * 1024 * 1024,
                row_bytes: 400 * 1024,
                storage: "the in-memory store",
                row_limit: "the in-memory store's 400 KB row limit",
            },
        }
    }

    /// The same store with other limits (to test how a projection packs its steps).
    pub fn with_limits(mut self, limits: CommitLimits) -> Self {
        self.limits = limits;
        self
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::corrupt("in-memory projections poisoned by a panic"))
    }
}

impl State {
    /// Whether the checkpoint of `slot` is still `read`. A live checkpoint never written
    /// reads as position 0 of generation 1; a rebuild's must exist.
    fn unchanged(&self, slot: &Slot, read: &Checkpoint) -> bool {
        match (self.checkpoints.get(slot), slot) {
            (Some(stored), _) => {
                stored.position == read.position
                    && stored.generation == read.generation
                    && stored.failures == read.failures
            }
            (None, Slot::Live(_)) => read.position == 0 && read.failures == 0,
            (None, Slot::Rebuild(_)) => false,
        }
    }
}

impl ProjectionStore for InMemoryProjections {
    fn limits(&self) -> CommitLimits {
        self.limits
    }

    fn row_size(
        &self,
        _name: &str,
        _generation: u64,
        row: &RowId,
        value: Option<&Value>,
    ) -> Result<usize, StoreError> {
        let key = row.key.len() + row.item.len();
        Ok(key + value.map_or(0, |v| v.to_string().len()))
    }

    async fn checkpoint(&self, slot: &Slot) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.lock()?.checkpoints.get(slot).copied())
    }

    async fn load_rows(
        &self,
        name: &str,
        generation: u64,
        rows: &BTreeSet<RowId>,
    ) -> Result<Rows, StoreError> {
        let state = self.lock()?;
        Ok(Rows::loaded(rows.iter().map(|row| {
            let key = (name.to_owned(), generation, row.clone());
            (row.clone(), state.rows.get(&key).cloned())
        })))
    }

    async fn commit(
        &self,
        slot: &Slot,
        read: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> Result<Commit, StoreError> {
        let mut state = self.lock()?;
        if !state.unchanged(slot, &read) {
            return Ok(Commit::Lost);
        }
        for (row, value) in changes {
            let key = (slot.name().to_owned(), read.generation, row.clone());
            match value {
                Some(value) => state.rows.insert(key, value.clone()),
                None => state.rows.remove(&key),
            };
        }
        state.checkpoints.insert(
            slot.clone(),
            Checkpoint {
                position,
                failures: 0,
                ..read
            },
        );
        Ok(Commit::Done)
    }

    async fn count_failure(&self, slot: &Slot, read: Checkpoint) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        if !state.unchanged(slot, &read) {
            return Ok(false);
        }
        state.checkpoints.insert(
            slot.clone(),
            Checkpoint {
                failures: read.failures + 1,
                ..read
            },
        );
        Ok(true)
    }

    async fn park(
        &self,
        slot: &Slot,
        read: Checkpoint,
        event: &ParkedEvent,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        if !state.unchanged(slot, &read) {
            return Ok(false);
        }
        state.parked.insert(
            (slot.name().to_owned(), read.generation, event.position),
            Parked {
                position: event.position,
                event_id: event.event_id.clone(),
                error: event.error.clone(),
            },
        );
        state.checkpoints.insert(
            slot.clone(),
            Checkpoint {
                position: event.position,
                parked: read.parked + 1,
                failures: 0,
                ..read
            },
        );
        Ok(true)
    }

    async fn start_rebuild(
        &self,
        name: &str,
        live: Checkpoint,
        stale: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let live_generation = state
            .checkpoints
            .get(&Slot::Live(name.to_owned()))
            .map_or(1, |c| c.generation);
        let slot = Slot::Rebuild(name.to_owned());
        let found = state.checkpoints.get(&slot).map(|c| c.generation);
        if live_generation != live.generation || found != stale {
            return Ok(false);
        }
        state.checkpoints.insert(
            slot,
            Checkpoint {
                position: 0,
                generation: live.generation + 1,
                parked: 0,
                failures: 0,
            },
        );
        Ok(true)
    }

    async fn switch(
        &self,
        name: &str,
        live: Checkpoint,
        rebuilt: Checkpoint,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let live_slot = Slot::Live(name.to_owned());
        let rebuild_slot = Slot::Rebuild(name.to_owned());
        let rebuild_unchanged = state
            .checkpoints
            .get(&rebuild_slot)
            .is_some_and(|c| c.position == rebuilt.position && c.generation == rebuilt.generation);
        if !state.unchanged(&live_slot, &live) || !rebuild_unchanged {
            return Ok(false);
        }
        state.checkpoints.remove(&rebuild_slot);
        state.checkpoints.insert(
            live_slot,
            Checkpoint {
                failures: 0,
                ..rebuilt
            },
        );
        Ok(true)
    }

    async fn unpark(
        &self,
        name: &str,
        live: Checkpoint,
        position: u64,
        changes: &[(RowId, Option<Value>)],
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let slot = Slot::Live(name.to_owned());
        let key = (name.to_owned(), live.generation, position);
        if !state.unchanged(&slot, &live) || !state.parked.contains_key(&key) {
            return Ok(false);
        }
        for (row, value) in changes {
            let row_key = (name.to_owned(), live.generation, row.clone());
            match value {
                Some(value) => state.rows.insert(row_key, value.clone()),
                None => state.rows.remove(&row_key),
            };
        }
        state.parked.remove(&key);
        state.checkpoints.insert(
            slot,
            Checkpoint {
                parked: live.parked.saturating_sub(1),
                ..live
            },
        );
        Ok(true)
    }

    async fn parked(&self, name: &str, generation: u64) -> Result<Vec<Parked>, StoreError> {
        let state = self.lock()?;
        Ok(state
            .parked
            .range((name.to_owned(), generation, 0)..=(name.to_owned(), generation, u64::MAX))
            .map(|(_, parked)| parked.clone())
            .collect())
    }

    async fn rows(
        &self,
        name: &str,
        generation: u64,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, Value)>, Option<String>), StoreError> {
        let state = self.lock()?;
        let mut found: Vec<(String, Value)> = state
            .rows
            .iter()
            .filter(|((n, g, row), _)| n == name && *g == generation && row.key == key)
            .filter(|((_, _, row), _)| after.is_none_or(|after| row.item.as_str() > after))
            .map(|((_, _, row), value)| (row.item.clone(), value.clone()))
            .take(limit.saturating_add(1))
            .collect();
        let next = if found.len() > limit {
            found.truncate(limit);
            found.last().map(|(item, _)| item.clone())
        } else {
            None
        };
        Ok((found, next))
    }
}

impl SubscriptionStore for InMemoryProjections {
    async fn subscription(&self, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.lock()?.subscriptions.get(name).copied())
    }

    async fn save_subscription(
        &self,
        name: &str,
        position: u64,
        force: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        let mut state = self.lock()?;
        match state.subscriptions.get(name) {
            Some(&stored) if stored > position && !force => Ok(Err(stored)),
            _ => {
                state.subscriptions.insert(name.to_owned(), position);
                Ok(Ok(()))
            }
        }
    }
}
