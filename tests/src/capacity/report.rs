//! The capacity report: units per event by phase and operation, and the load a target rate
//! puts on the hottest partition key of each kind, against DynamoDB's per-partition limits.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Ledger, PartitionKey, Units};

/// What one partition key can take each second: DynamoDB's documented per-partition limits.
pub const PARTITION_WCU: f64 = 1000.0;
pub const PARTITION_RCU: f64 = 3000.0;
/// Positions per `globalBucket` (`keys::GLOBAL_BUCKET_SIZE`): one bucket key can never
/// receive more entries than that, however fast positions go.
const BUCKET_POSITIONS: f64 = 1000.0;
/// `keys::UNSEQUENCED_SHARDS`.
const UNSEQUENCED_SHARDS: f64 = 16.0;

/// The rate and key distribution to size for.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Events per second.
    pub rate: f64,
    /// Streams the events spread over evenly.
    pub streams: f64,
    /// Share of the events of the busiest event type, and of the busiest category.
    pub hot_type_share: f64,
    pub hot_category_share: f64,
    /// Caught-up `$all` readers polling, and how often each polls.
    pub readers: f64,
    pub polls_per_second: f64,
}

/// Partition keys that carry the same kind of load.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyClass {
    /// `STREAM#<id>`: a stream's events, head and snapshot.
    Stream,
    GlobalCounter,
    TypeCounter,
    CategoryCounter,
    /// A `GlobalOrder` bucket.
    GlobalBucket,
    /// An event type in `TypeOrder`.
    TypeIndex,
    /// A category in `CategoryOrder`.
    CategoryIndex,
    UnsequencedShard,
    Other(String),
}

impl KeyClass {
    pub fn of(key: &PartitionKey) -> Self {
        match key.target.as_str() {
            "GlobalOrder" => Self::GlobalBucket,
            "TypeOrder" => Self::TypeIndex,
            "CategoryOrder" => Self::CategoryIndex,
            "Unsequenced" => Self::UnsequencedShard,
            "table" => {
                let v = key.value.as_str();
                if v.starts_with("STREAM#") {
                    Self::Stream
                } else if v == "COUNTER#ALL" {
                    Self::GlobalCounter
                } else if v.starts_with("COUNTER#TYPE#") {
                    Self::TypeCounter
                } else if v.starts_with("COUNTER#CATEGORY#") {
                    Self::CategoryCounter
                } else {
                    Self::Other(format!("table {}", v.split('#').next().unwrap_or(v)))
                }
            }
            other => Self::Other(other.to_owned()),
        }
    }

    /// The share of the events at `target` that the busiest key of this class carries.
    fn hottest_share(&self, target: &Target) -> f64 {
        match self {
            Self::Stream => 1.0 / target.streams,
            Self::GlobalCounter | Self::Other(_) => 1.0,
            Self::TypeCounter | Self::TypeIndex => target.hot_type_share,
            Self::CategoryCounter | Self::CategoryIndex => target.hot_category_share,
            Self::GlobalBucket => (BUCKET_POSITIONS / target.rate).min(1.0),
            Self::UnsequencedShard => 1.0 / UNSEQUENCED_SHARDS,
        }
    }
}

/// The busiest key of one class at the target rate.
#[derive(Debug, Clone, PartialEq)]
pub struct HotKey {
    pub class: KeyClass,
    pub wcu_per_event: f64,
    pub rcu_per_event: f64,
    pub rcu_per_poll: f64,
    /// Units per second on the class's busiest key at the target.
    pub wcu_per_second: f64,
    pub rcu_per_second: f64,
}

impl HotKey {
    pub fn over_limit(&self) -> bool {
        self.wcu_per_second > PARTITION_WCU || self.rcu_per_second > PARTITION_RCU
    }
}

fn by_class(ledger: &Ledger) -> BTreeMap<KeyClass, Units> {
    let mut classes: BTreeMap<KeyClass, Units> = BTreeMap::new();
    for (key, units) in &ledger.by_key {
        *classes.entry(KeyClass::of(key)).or_default() += *units;
    }
    classes
}

/// The busiest key of each class: `writing` is the ledger of appending and sequencing
/// `events` events, `polling` that of `polls` polls of a caught-up reader.
pub fn hot_keys(
    writing: &Ledger,
    events: usize,
    polling: &Ledger,
    polls: usize,
    target: &Target,
) -> Vec<HotKey> {
    let writes = by_class(writing);
    let reads = by_class(polling);
    let mut classes: Vec<KeyClass> = writes.keys().chain(reads.keys()).cloned().collect();
    classes.sort();
    classes.dedup();
    classes
        .into_iter()
        .map(|class| {
            let w = writes.get(&class).copied().unwrap_or_default();
            let r = reads.get(&class).copied().unwrap_or_default();
            let wcu_per_event = w.wcu / events as f64;
            let rcu_per_event = w.rcu / events as f64;
            let rcu_per_poll = r.rcu / polls.max(1) as f64;
            let share = class.hottest_share(target);
            // Pollers read the keys they read whatever the event mix: the busiest key of a
            // class takes all of its polls.
            let polls_per_second = target.readers * target.polls_per_second;
            HotKey {
                wcu_per_event,
                rcu_per_event,
                rcu_per_poll,
                wcu_per_second: wcu_per_event * target.rate * share,
                rcu_per_second: rcu_per_event * target.rate * share
                    + rcu_per_poll * polls_per_second,
                class,
            }
        })
        .collect()
}

/// Per phase and operation: requests, and units per event.
pub fn operations_table(phases: &[(&str, &Ledger, usize)]) -> String {
    let mut out = String::from(
        "| phase | operation | requests | per event | WCU per event | RCU per event |\n|---|---|---|---|---|---|\n",
    );
    for (phase, ledger, events) in phases {
        let n = (*events).max(1) as f64;
        for (operation, (requests, units)) in &ledger.by_operation {
            let _ = writeln!(
                out,
                "| {phase} | {operation} | {requests} | {:.3} | {:.2} | {:.2} |",
                f64::from(*requests) / n,
                units.wcu / n,
                units.rcu / n
            );
        }
        let total = ledger.total();
        let _ = writeln!(
            out,
            "| {phase} | all | {} | {:.3} | {:.2} | {:.2} |",
            ledger.by_operation.values().map(|(r, _)| r).sum::<u32>(),
            f64::from(ledger.by_operation.values().map(|(r, _)| r).sum::<u32>()) / n,
            total.wcu / n,
            total.rcu / n
        );
    }
    out
}

/// The hot-key table, one row per class, flagging keys over DynamoDB's limits.
pub fn hot_key_table(keys: &[HotKey], target: &Target) -> String {
    let mut out = format!(
        "At {} events/s over {} streams, busiest type {:.0}% and category {:.0}% of events, {} readers polling {}/s (limits per key: {PARTITION_WCU} WCU/s, {PARTITION_RCU} RCU/s):\n\n",
        target.rate,
        target.streams,
        target.hot_type_share * 100.0,
        target.hot_category_share * 100.0,
        target.readers,
        target.polls_per_second
    );
    out.push_str("| partition key | WCU per event | RCU per event | RCU per poll | busiest key WCU/s | busiest key RCU/s | within limits |\n|---|---|---|---|---|---|---|\n");
    for k in keys {
        let _ = writeln!(
            out,
            "| {:?} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} |",
            k.class,
            k.wcu_per_event,
            k.rcu_per_event,
            k.rcu_per_poll,
            k.wcu_per_second,
            k.rcu_per_second,
            if k.over_limit() { "NO" } else { "yes" }
        );
    }
    out
}
