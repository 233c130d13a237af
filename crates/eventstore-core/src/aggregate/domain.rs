//! The traits an app implements: [`Aggregate`], pure and synchronous domain logic, and
//! [`DomainEvent`], the events it decides and applies.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A domain event: an enum whose variants are named in the past tense. The variant name is
/// the stored `eventType` and its fields are `data` (a unit variant stores `{}`), so
/// `MoneyDeposited { amount: 5 }` is stored as type `MoneyDeposited`, data `{"amount":5}`.
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync {
    /// The schema version this code writes (and upcasters bring older events up to).
    fn schema_version(&self) -> u32 {
        1
    }
}

/// The logic of one kind of aggregate. `decide` and `apply` are pure and synchronous: no I/O,
/// no clock, no randomness, so they are tested without any store (see the `testkit`).
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync {
    /// Streams of this aggregate are `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;
    /// The shape of the state as snapshots store it. Bump it when the state's fields change:
    /// snapshots of other versions are then ignored and the state is rebuilt from events.
    const STATE_SCHEMA_VERSION: u32 = 1;
    /// Snapshot every this many events; 0 never snapshots.
    const SNAPSHOT_EVERY: u64 = 100;

    type Event: DomainEvent;
    type Command;
    /// Why a command is refused: a domain outcome, never an infrastructure failure.
    type Error: std::error::Error + Send + Sync + 'static;

    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    fn apply(&mut self, event: &Self::Event);
}
