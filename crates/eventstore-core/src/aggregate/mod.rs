//! Event-sourced aggregates: pure, synchronous domain logic ([`Aggregate`]), and the
//! [`Repository`] that loads them from their stream (from a snapshot when there is one) and
//! saves what they decide with optimistic concurrency.
//!
//! - `domain`: the [`Aggregate`] and [`DomainEvent`] traits an app implements;
//! - `codec`: a domain event to and from its stored type and data;
//! - `context`: [`CommandContext`] and the event ids derived from idempotency keys;
//! - `repository`: [`Repository`], its settings, and loading;
//! - `command`: executing and saving commands;
//! - `snapshot_policy`: [`SnapshotMode`], and when snapshots are read and written.

mod codec;
mod command;
mod context;
mod domain;
mod repository;
mod snapshot_policy;

pub use codec::{decode_event, encode_event};
pub use command::{CommandError, Executed, SaveError};
pub use context::{CommandContext, IDEMPOTENCY_WINDOW};
pub use domain::{Aggregate, DomainEvent};
pub use repository::{Loaded, Repository, DEFAULT_COMMAND_ATTEMPTS};
pub use snapshot_policy::SnapshotMode;
