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
    /// `STREAM#<id>`: a stream's events and snapshot.
    Stream,
    GlobalCounter,
    /// A `GlobalOrder` bucket.
    GlobalBucket,
    Other(String),
}

impl KeyClass {
    pub fn of(key: &PartitionKey) -> Self {
        match key.target.as_str() {
            "GlobalOrder" => Self::GlobalBucket,
            "table" => {
                let v = key.value.as_str();
                if v.starts_with("STREAM#") {
                    Self::Stream
                } else if v == "COUNTER#ALL" {
                    Self::GlobalCounter
                } else {
                    Self::Other(format!("table {}", v.split('#').next().unwrap_or(v)))
                }
            }
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The busiest key of one class at the target rate.
#[derive(Debug, Clone, PartialEq)]
pub struct HotKey {
    pub class: KeyClass,
    /// Units per event on all keys of the class.
    pub wcu_per_event: f64,
    pub rcu_per_event: f64,
    /// Read units per poll on the class's busiest key.
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

/// Per class, the units of its busiest key (by write units, then read units).
fn busiest(ledger: &Ledger) -> BTreeMap<KeyClass, Units> {
    let mut classes: BTreeMap<KeyClass, Units> = BTreeMap::new();
    for (key, units) in &ledger.by_key {
        let top = classes.entry(KeyClass::of(key)).or_default();
        if (units.wcu, units.rcu) > (top.wcu, top.rcu) {
            *top = *units;
        }
    }
    classes
}

/// The busiest key of each class at `target`. `writing` is the ledger of appending and
/// sequencing `events` events spread over `run_streams` streams with the target's type
/// and category shares; `polling` that of `polls` polls of a caught-up reader.
///
/// A key's load scales with the rate: its units in the run per event, times the target
/// rate. Two corrections: a stream key by the run's streams over the target's (each
/// target stream takes its share of the rate), and a `GlobalOrder` bucket, which never
/// holds more than its 1,000 positions, so no bucket key takes more than 1,000 entries
/// however fast positions go. Batching is the run's: the sequencer's claims on moto hold
/// fewer events than they would at the target rate, so counter loads are overstated,
/// never understated.
pub fn hot_keys(
    writing: &Ledger,
    events: usize,
    run_streams: usize,
    polling: &Ledger,
    polls: usize,
    target: &Target,
) -> Vec<HotKey> {
    let writes = busiest(writing);
    let reads = busiest(polling);
    let class_total = |class: &KeyClass| -> Units {
        let mut total = Units::default();
        for (key, units) in &writing.by_key {
            if KeyClass::of(key) == *class {
                total += *units;
            }
        }
        total
    };
    let mut classes: Vec<KeyClass> = writes.keys().chain(reads.keys()).cloned().collect();
    classes.sort();
    classes.dedup();
    let events = events.max(1) as f64;
    let polls_per_second = target.readers * target.polls_per_second;
    classes
        .into_iter()
        .map(|class| {
            let top = writes.get(&class).copied().unwrap_or_default();
            let all = class_total(&class);
            let poll = reads.get(&class).copied().unwrap_or_default();
            let (wcu_per_second, rcu_per_second) = match class {
                // Every entry lands in the current bucket, which takes at most 1,000.
                KeyClass::GlobalBucket => {
                    let entries = target.rate.min(BUCKET_POSITIONS);
                    (all.wcu / events * entries, all.rcu / events * entries)
                }
                KeyClass::Stream => {
                    let share = run_streams as f64 / target.streams;
                    (
                        top.wcu / events * target.rate * share,
                        top.rcu / events * target.rate * share,
                    )
                }
                _ => (
                    top.wcu / events * target.rate,
                    top.rcu / events * target.rate,
                ),
            };
            HotKey {
                wcu_per_event: all.wcu / events,
                rcu_per_event: all.rcu / events,
                rcu_per_poll: poll.rcu / polls.max(1) as f64,
                wcu_per_second,
                rcu_per_second: rcu_per_second + poll.rcu / polls.max(1) as f64 * polls_per_second,
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
    out.push_str("| partition keys | WCU per event (all keys) | RCU per event (all keys) | RCU per poll | busiest key WCU/s | busiest key RCU/s | within limits |\n|---|---|---|---|---|---|---|\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(target: &str, value: &str) -> PartitionKey {
        PartitionKey {
            target: target.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn loads_scale_with_the_rate_with_streams_shared_and_buckets_capped() {
        let mut ledger = Ledger::default();
        let w = |wcu| Units { wcu, rcu: 0.0 };
        // 100 events: two streams of 50, the counter written 20 WCU, one bucket.
        ledger.by_key.insert(key("table", "STREAM#a-1"), w(100.0));
        ledger.by_key.insert(key("table", "STREAM#a-2"), w(60.0));
        ledger.by_key.insert(key("table", "COUNTER#ALL"), w(20.0));
        ledger.by_key.insert(key("GlobalOrder", "0"), w(100.0));
        let target = Target {
            rate: 10_000.0,
            streams: 1000.0,
            hot_type_share: 0.5,
            hot_category_share: 0.5,
            readers: 0.0,
            polls_per_second: 0.0,
        };
        let keys = hot_keys(&ledger, 100, 2, &Ledger::default(), 1, &target);
        let get = |class: KeyClass| keys.iter().find(|k| k.class == class).unwrap().clone();
        // The busiest stream took 1 WCU an event of the run's 2 streams: at 1,000 streams,
        // 1 × 10,000 × 2 / 1,000.
        assert_eq!(get(KeyClass::Stream).wcu_per_second, 20.0);
        assert_eq!(get(KeyClass::Stream).wcu_per_event, 1.6);
        assert_eq!(get(KeyClass::GlobalCounter).wcu_per_second, 2000.0);
        assert!(get(KeyClass::GlobalCounter).over_limit());
        // One entry an event, but a bucket holds 1,000 positions.
        assert_eq!(get(KeyClass::GlobalBucket).wcu_per_second, 1000.0);
        assert!(!get(KeyClass::GlobalBucket).over_limit());
    }
}
