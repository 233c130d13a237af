//! The sequencer's plan for one round, pure: which unsequenced events one claim takes, and
//! the positions they get. The round (`round.rs`) reads what this needs and writes the
//! claim it plans.

use super::claim::{Claim, Run, MAX_CLAIM_BYTES, MAX_CLAIM_EVENTS, RUN_OVERHEAD};

/// An event after its stream's head, as much of it as sequencing needs: its version, and
/// when it was appended (for the lag metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsequenced {
    pub version: u64,
    pub created_at: String,
}

impl Unsequenced {
    /// What sequencing needs of an event item, read from the table or from the new image
    /// of its stream record.
    pub(crate) fn of(item: crate::item::EventItem) -> Self {
        Self {
            version: item.version,
            created_at: item.created_at,
        }
    }
}

/// A stream as a round found it: its head (the last version sequenced), and its events
/// after the head, in version order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub stream: String,
    pub head: u64,
    pub events: Vec<Unsequenced>,
}

/// What one claim may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Budget {
    pub events: usize,
    /// Bytes of runs: each stream taken costs its id's length and [`RUN_OVERHEAD`].
    pub bytes: usize,
}

impl Budget {
    pub const CLAIM: Self = Self {
        events: MAX_CLAIM_EVENTS,
        bytes: MAX_CLAIM_BYTES,
    };
}

/// How many events of each stream one claim takes, within `budget`, in stream order: a
/// stream is taken as far as it fits, and the first that does not fit at all ends the
/// packing, so streams keep their order. Streams without events take none.
pub(super) fn pack(found: &[Found], budget: Budget) -> Vec<usize> {
    let mut takes = vec![0; found.len()];
    let mut events = budget.events;
    let mut bytes = budget.bytes;
    for (i, stream) in found.iter().enumerate() {
        if stream.events.is_empty() {
            continue;
        }
        let cost = stream.stream.len() + RUN_OVERHEAD;
        let take = stream.events.len().min(events);
        if take == 0 || cost > bytes {
            break;
        }
        takes[i] = take;
        events -= take;
        bytes -= cost;
    }
    takes
}

/// The claim for the taken events: positions after `last` (the counter's value), in
/// stream order and within a stream in version order. `None` when nothing is taken.
pub(super) fn place(found: &[Found], takes: &[usize], last: u64) -> Option<Claim> {
    let runs: Vec<Run> = found
        .iter()
        .zip(takes)
        .filter(|(_, &take)| take > 0)
        .map(|(stream, &take)| Run {
            stream: stream.stream.clone(),
            from: stream.head + 1,
            to: stream.head + take as u64,
        })
        .collect();
    (!runs.is_empty()).then(|| Claim {
        first: last + 1,
        runs,
    })
}

#[cfg(test)]
mod tests;
