//! The append and read semantics of the store, over any [`EventLog`].
//!
//! This module holds [`EventStore`] itself and the read arguments every read checks; the
//! operations live by concern:
//! - `append`: appends with expected-version semantics, retry recognition and [`AppendOutcome`];
//! - `stream`: reading one stream page by page, and its current version ([`StreamInfo`]);
//! - `global`: paging through the global order and its indexes, waiting out index lag;
//! - `snapshots`: snapshots a client stores and reads through the store.

mod append;
mod global;
mod snapshots;
mod stream;

pub use append::AppendOutcome;
pub use global::{GlobalPage, INDEX_LAG_WAITS, MAX_READ_WAIT, READ_WAIT_POLL};
pub use stream::{Direction, StreamInfo, StreamPage, StreamRead};

use crate::limits::{MAX_POSITION, MAX_READ_LIMIT};
use crate::{EventLog, ValidationError};

/// The event store: validation, expected-version semantics, idempotency and paging, on top
/// of a storage [`EventLog`].
#[derive(Debug, Clone)]
pub struct EventStore<L> {
    log: L,
}

pub(crate) fn validate_limit(limit: usize) -> Result<(), ValidationError> {
    if (1..=MAX_READ_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "limit",
            format!("must be between 1 and {MAX_READ_LIMIT}"),
        ))
    }
}

fn validate_from(from: u64) -> Result<(), ValidationError> {
    if (1..=MAX_POSITION).contains(&from) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "from",
            format!("must be between 1 and {MAX_POSITION}"),
        ))
    }
}

impl<L: EventLog> EventStore<L> {
    pub fn new(log: L) -> Self {
        Self { log }
    }

    pub fn log(&self) -> &L {
        &self.log
    }
}
