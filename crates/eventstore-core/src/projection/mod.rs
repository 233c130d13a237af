//! Projections: read models kept up to date from the global order.
//!
//! A projection is pure: given an event and the current values of the rows it touches, it
//! changes those rows. The [`ProjectionEngine`] reads the rows, applies a batch of events
//! in global order, and has the [`ProjectionStore`] write each changed row once, together
//! with the projection's checkpoint, atomically and conditioned on the checkpoint it read.
//! So every event takes effect exactly once and in order, whatever crashes or redeliveries
//! happen, and a projection can be replayed from position 1 into fresh rows.
//!
//! - [`engine`]: catch-ups, one projection or all of them in rounds;
//! - `step`: one step (rows loaded, events applied, one commit) and the poison policy;
//! - `rebuild`: replay into a new generation and switch readers to it;
//! - `replay`: parked events applied late, after a fix;
//! - [`port`]: what the engine needs from storage; DynamoDB implements it in the adapter,
//!   `memory::InMemoryProjections` in memory;
//! - [`builtin`]: the built-in `category-streams`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{EventType, RecordedEvent};

pub mod builtin;
pub mod engine;
mod none;
mod pass;
pub mod port;
mod rebuild;
mod replay;
mod step;
#[cfg(test)]
mod tests;

pub use engine::{Pass, ProjectReport, ProjectionEngine, POISON_ATTEMPTS};
pub use none::NoProjections;
pub use port::{
    Commit, CommitLimits, Parked, ParkedEvent, ProjectionStore, Slot, SubscriptionStore,
};
pub use replay::Replayed;

/// A row of a projection: `key` is what readers look up (an account id, a category);
/// `item` tells rows under the same key apart (empty for one row per key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowId {
    pub key: String,
    pub item: String,
}

impl RowId {
    /// The only row under `key`.
    pub fn single(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            item: String::new(),
        }
    }

    pub fn item(key: impl Into<String>, item: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            item: item.into(),
        }
    }
}

/// The rows a batch of events works on: loaded before, written once after.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    values: BTreeMap<RowId, Option<Value>>,
    changed: BTreeMap<RowId, ()>,
}

impl Rows {
    /// Rows as loaded from storage (`None`: the row does not exist).
    pub fn loaded(values: impl IntoIterator<Item = (RowId, Option<Value>)>) -> Self {
        Self {
            values: values.into_iter().collect(),
            changed: BTreeMap::new(),
        }
    }

    pub fn get(&self, id: &RowId) -> Option<&Value> {
        self.values.get(id).and_then(Option::as_ref)
    }

    pub fn put(&mut self, id: RowId, value: Value) {
        self.changed.insert(id.clone(), ());
        self.values.insert(id, Some(value));
    }

    pub fn delete(&mut self, id: RowId) {
        self.changed.insert(id.clone(), ());
        self.values.insert(id, None);
    }

    pub fn is_loaded(&self, id: &RowId) -> bool {
        self.values.contains_key(id)
    }

    /// Each changed row once, with its final value (`None`: delete it).
    pub fn changes(&self) -> Vec<(RowId, Option<Value>)> {
        self.changed
            .keys()
            .map(|id| (id.clone(), self.values.get(id).cloned().flatten()))
            .collect()
    }
}

/// A read model built from the global order.
pub trait Projection: Send + Sync {
    /// Unique, `[a-z0-9-]`: it prefixes the projection's rows and names its checkpoint.
    fn name(&self) -> &str;

    /// Whether the projection cares about events of this type; others only move its
    /// checkpoint.
    fn handles(&self, event_type: &EventType) -> bool;

    /// The rows `apply` reads or writes for `event`, loaded before it runs.
    fn rows(&self, event: &RecordedEvent) -> Vec<RowId>;

    /// Changes the rows for `event`. An error means the event cannot be applied: after
    /// bounded retries the projector parks it and moves on.
    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String>;
}

/// Where a projection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// The last global position applied (or skipped as not handled, or parked).
    pub position: u64,
    /// The generation of rows readers see; a rebuild writes the next one.
    pub generation: u64,
    /// Events parked as unappliable.
    pub parked: u64,
    /// Failed attempts at the event after `position`.
    pub failures: u32,
}
