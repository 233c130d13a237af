//! The sequencer's plan for one round, pure: which unsequenced events fit one transaction,
//! and the positions, type and category numbers, head and counter moves that give them
//! their places. The round (`round.rs`) reads what this needs and writes what it plans.

use std::collections::{BTreeMap, BTreeSet};

/// DynamoDB's limit of actions in one transaction.
pub(super) const MAX_TRANSACTION_ACTIONS: usize = 100;
/// Kept well under DynamoDB's 4 MB limit on the items a transaction touches.
pub(super) const MAX_TRANSACTION_BYTES: usize = 3 * 1024 * 1024;

/// What one transaction may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Budget {
    pub actions: usize,
    pub bytes: usize,
}

impl Budget {
    pub const DYNAMODB: Self = Self {
        actions: MAX_TRANSACTION_ACTIONS,
        bytes: MAX_TRANSACTION_BYTES,
    };
}

/// An event read after its stream's head, as much of it as sequencing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsequenced {
    pub version: u64,
    pub event_type: String,
    /// An upper estimate of the item's size, for the transaction's size limit.
    pub bytes: usize,
    pub created_at: String,
}

impl Unsequenced {
    /// What sequencing needs of an event item, read from the table or from the new image
    /// of its stream record.
    pub(crate) fn of(item: crate::item::EventItem) -> Self {
        Self {
            version: item.version,
            bytes: item.data.len()
                + item.metadata.len()
                + 2 * item.stream_id.len()
                + item.event_type.len()
                + 512,
            event_type: item.event_type,
            created_at: item.created_at,
        }
    }
}

/// A stream as a round found it: its category, its head (the last version sequenced), and
/// its events after the head, in version order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub category: String,
    pub head: u64,
    pub events: Vec<Unsequenced>,
}

/// A sub-sequence counter: one per event type, one per category.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Counter {
    Type(String),
    Category(String),
}

/// A head or counter moved from `old` to `new`, only if it still holds `old`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Move {
    pub old: u64,
    pub new: u64,
}

/// An event given its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Placed {
    /// The stream, as an index into the round's `Found`.
    pub stream: usize,
    pub version: u64,
    pub position: u64,
    pub type_sequence: u64,
    pub category_sequence: u64,
}

/// One transaction's worth of sequencing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub placed: Vec<Placed>,
    /// Per stream taken (index into `Found`), its head's move.
    pub heads: Vec<(usize, Move)>,
    pub global: Move,
    pub counters: BTreeMap<Counter, Move>,
}

/// How many events of each stream fit one transaction, in stream order: the global counter,
/// then per stream its head, its category's counter and its events' type counters (each
/// counter once), and each event's position update, within `budget`. A stream is taken as
/// far as it fits; the first that does not fit at all ends the packing, so streams keep
/// their order. Streams without events take none.
pub(super) fn pack(found: &[Found], budget: Budget) -> Vec<usize> {
    let mut takes = vec![0; found.len()];
    let mut actions = 1;
    let mut bytes = 0;
    let mut types: BTreeSet<&str> = BTreeSet::new();
    let mut categories: BTreeSet<&str> = BTreeSet::new();
    for (i, stream) in found.iter().enumerate() {
        if stream.events.is_empty() {
            continue;
        }
        let mut stream_types = types.clone();
        let mut cost = 1 + usize::from(!categories.contains(stream.category.as_str()));
        let mut size = 0;
        let mut take = 0;
        for event in &stream.events {
            let extra = 1 + usize::from(!stream_types.contains(event.event_type.as_str()));
            if actions + cost + extra > budget.actions || bytes + size + event.bytes > budget.bytes
            {
                break;
            }
            stream_types.insert(&event.event_type);
            cost += extra;
            size += event.bytes;
            take += 1;
        }
        if take == 0 {
            break;
        }
        actions += cost;
        bytes += size;
        types = stream_types;
        categories.insert(&stream.category);
        takes[i] = take;
    }
    takes
}

/// The counters the taken events move.
pub(super) fn counters(found: &[Found], takes: &[usize]) -> BTreeSet<Counter> {
    found
        .iter()
        .zip(takes)
        .filter(|(_, &take)| take > 0)
        .flat_map(|(stream, &take)| {
            std::iter::once(Counter::Category(stream.category.clone())).chain(
                stream.events[..take]
                    .iter()
                    .map(|e| Counter::Type(e.event_type.clone())),
            )
        })
        .collect()
}

/// Places the taken events: positions after `global`, in stream order and within a stream
/// in version order, and each event's next number of its type and of its category, from
/// the counter values read (`read`; a counter not in it has handed out nothing yet).
pub(super) fn place(
    found: &[Found],
    takes: &[usize],
    global: u64,
    read: &BTreeMap<Counter, u64>,
) -> Plan {
    let mut counters: BTreeMap<Counter, Move> = BTreeMap::new();
    let mut bump = |counter: Counter| {
        let old = read.get(&counter).copied().unwrap_or(0);
        let entry = counters.entry(counter).or_insert(Move { old, new: old });
        entry.new += 1;
        entry.new
    };
    let mut position = global;
    let mut placed = Vec::new();
    let mut heads = Vec::new();
    for (i, (stream, &take)) in found.iter().zip(takes).enumerate() {
        if take == 0 {
            continue;
        }
        for event in &stream.events[..take] {
            position += 1;
            placed.push(Placed {
                stream: i,
                version: event.version,
                position,
                type_sequence: bump(Counter::Type(event.event_type.clone())),
                category_sequence: bump(Counter::Category(stream.category.clone())),
            });
        }
        heads.push((
            i,
            Move {
                old: stream.head,
                new: stream.head + take as u64,
            },
        ));
    }
    Plan {
        placed,
        heads,
        global: Move {
            old: global,
            new: position,
        },
        counters,
    }
}

#[cfg(test)]
mod tests;
