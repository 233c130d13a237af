//! Capacity accounting from the wire: an SDK interceptor records every DynamoDB request and
//! its answer, and [`Ledger`] turns them into write and read units per table and index
//! partition key, as DynamoDB bills and limits them:
//!
//! - a write costs one WCU per started KB of the item (the larger of before and after;
//!   this uses the item as written, or as stored at the end of the run for updates and
//!   condition checks), twice that inside a transaction;
//! - each index entry a write adds, changes or removes costs one WCU per started KB of the
//!   projected entry (the whole item for `ALL`, the keys for `KEYS_ONLY`);
//! - a read costs one RCU per started 4 KB (per item for `GetItem` and `BatchGetItem`, over
//!   the whole answer for `Query`), half for eventually consistent reads.
//!
//! moto reports no capacity of its own (a constant, and nothing for transactions), so the
//! units are computed here from the items themselves, following AWS's documented rules.
//! Only answered requests are charged: DynamoDB also charges a conditional write whose
//! condition fails, and a cancelled transaction, which this does not count (the report's
//! runs have one writer per stream and one sequencer, so they lose no races).

mod expression;
mod report;
mod size;
mod workload;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use eventstore_dynamodb::{events_table_shape, IndexShape};
use serde_json::Value;

pub use report::{hot_key_table, hot_keys, operations_table, HotKey, KeyClass, Target};
pub use size::item_size;
pub use workload::{measure, Measured, Workload, POLLS};

/// One request as sent, with the answer it got.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// What the run was doing ([`CapacityRecorder::phase`]).
    pub phase: String,
    pub operation: String,
    pub request: Value,
    pub response: Value,
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Sent(String, Value);

impl aws_smithy_types::config_bag::Storable for Sent {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Records every request and answer, retries included, until [`CapacityRecorder::take`],
/// each under the phase set last.
#[derive(Debug, Clone, Default)]
pub struct CapacityRecorder {
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    phase: Arc<Mutex<String>>,
}

impl CapacityRecorder {
    pub fn take(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.exchanges.lock().unwrap())
    }

    /// Names what the requests from now on are for.
    pub fn phase(&self, name: &str) {
        *self.phase.lock().unwrap() = name.to_owned();
    }
}

fn json(bytes: Option<&[u8]>) -> Value {
    bytes
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null)
}

impl Intercept for CapacityRecorder {
    fn name(&self) -> &'static str {
        "CapacityRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown".to_owned(), |m| m.name().to_owned());
        let request = json(context.request().body().bytes());
        cfg.interceptor_state().store_put(Sent(operation, request));
        Ok(())
    }

    // After deserialization: only then is the answer's body read into memory.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Sent(operation, request)) = cfg.load::<Sent>().cloned() {
            let response = context.response();
            let phase = self.phase.lock().unwrap().clone();
            self.exchanges.lock().unwrap().push(Exchange {
                phase,
                operation,
                request,
                response: json(response.body().bytes()),
                status: response.status().as_u16(),
            });
        }
        Ok(())
    }
}

/// Units charged to one partition key of the table or of an index.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    pub wcu: f64,
    pub rcu: f64,
}

impl std::ops::AddAssign for Units {
    fn add_assign(&mut self, other: Self) {
        self.wcu += other.wcu;
        self.rcu += other.rcu;
    }
}

/// Where units land: the table or an index, and a partition key value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartitionKey {
    /// `table` or the index name.
    pub target: String,
    pub value: String,
}

/// The units of a set of exchanges, per operation and per partition key.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Operation name: (requests, units).
    pub by_operation: BTreeMap<String, (u32, Units)>,
    pub by_key: BTreeMap<PartitionKey, Units>,
}

impl Ledger {
    /// Accounts for `exchanges`, in the order they were sent, against the events table,
    /// whose items at the end of the run are `stored` (the size of the items updates and
    /// condition checks touch): one ledger per phase.
    pub fn per_phase(
        exchanges: &[Exchange],
        stored: &[BTreeMap<String, Value>],
    ) -> BTreeMap<String, Ledger> {
        let shape = events_table_shape();
        let stored: Stored = stored
            .iter()
            .filter_map(|item| Some((key_of(item)?, item)))
            .collect();
        let mut ledgers: BTreeMap<String, Ledger> = BTreeMap::new();
        let mut seen = BTreeMap::new();
        for exchange in exchanges {
            let mut charges = Vec::new();
            if exchange.status == 200 {
                charges = charge(exchange, &shape.indexes, &stored, &mut seen);
            }
            let ledger = ledgers.entry(exchange.phase.clone()).or_default();
            let entry = ledger
                .by_operation
                .entry(exchange.operation.clone())
                .or_default();
            entry.0 += 1;
            for (key, units) in charges {
                entry.1 += units;
                *ledger.by_key.entry(key).or_default() += units;
            }
        }
        ledgers
    }

    /// This ledger and `other`'s together.
    pub fn merged(&self, other: &Ledger) -> Ledger {
        let mut out = self.clone();
        for (operation, (requests, units)) in &other.by_operation {
            let entry = out.by_operation.entry(operation.clone()).or_default();
            entry.0 += requests;
            entry.1 += *units;
        }
        for (key, units) in &other.by_key {
            *out.by_key.entry(key.clone()).or_default() += *units;
        }
        out
    }

    pub fn total(&self) -> Units {
        let mut total = Units::default();
        for (_, units) in self.by_operation.values() {
            total += *units;
        }
        total
    }
}

type Stored<'a> = BTreeMap<(String, String), &'a BTreeMap<String, Value>>;

/// The item's (PK, SK), from DynamoDB JSON.
fn key_of(item: &BTreeMap<String, Value>) -> Option<(String, String)> {
    let s = |name: &str| item.get(name)?.get("S")?.as_str().map(str::to_owned);
    Some((s("PK")?, s("SK")?))
}

/// An SDK item as DynamoDB's JSON, as it travels on the wire.
pub fn item_json(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> BTreeMap<String, Value> {
    item.iter()
        .map(|(name, value)| (name.clone(), attribute_json(value)))
        .collect()
}

fn attribute_json(value: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    // Binary travels base64-encoded; only its length matters here.
    let b64 =
        |b: &aws_smithy_types::Blob| Value::from("A".repeat(4 * b.as_ref().len().div_ceil(3)));
    match value {
        A::S(s) => serde_json::json!({ "S": s }),
        A::N(n) => serde_json::json!({ "N": n }),
        A::B(b) => serde_json::json!({ "B": b64(b) }),
        A::Bool(b) => serde_json::json!({ "BOOL": b }),
        A::Null(n) => serde_json::json!({ "NULL": n }),
        A::Ss(v) => serde_json::json!({ "SS": v }),
        A::Ns(v) => serde_json::json!({ "NS": v }),
        A::Bs(v) => serde_json::json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        A::L(v) => serde_json::json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        A::M(m) => serde_json::json!({ "M": item_json(m) }),
        _ => Value::Null,
    }
}

fn object(v: &Value) -> BTreeMap<String, Value> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn started(bytes: usize, unit: usize) -> f64 {
    bytes.div_ceil(unit).max(1) as f64
}

fn table_key(value: &str) -> PartitionKey {
    PartitionKey {
        target: "table".to_owned(),
        value: value.to_owned(),
    }
}

/// The units one answered request cost, per partition key.
fn charge(
    exchange: &Exchange,
    indexes: &[IndexShape],
    stored: &Stored,
    seen: &mut BTreeMap<(String, String), BTreeMap<String, Value>>,
) -> Vec<(PartitionKey, Units)> {
    let r = &exchange.request;
    let consistent = r["ConsistentRead"].as_bool().unwrap_or(false);
    let read_factor = if consistent { 1.0 } else { 0.5 };
    let mut out = Vec::new();
    match exchange.operation.as_str() {
        "PutItem" | "UpdateItem" | "DeleteItem" => {
            out.extend(write(&exchange.operation, r, indexes, stored, seen, 1.0));
        }
        "TransactWriteItems" => {
            for action in r["TransactItems"].as_array().into_iter().flatten() {
                for kind in ["Put", "Update", "Delete", "ConditionCheck"] {
                    if !action[kind].is_null() {
                        let op = match kind {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            "Delete" => "DeleteItem",
                            _ => "ConditionCheck",
                        };
                        out.extend(write(op, &action[kind], indexes, stored, seen, 2.0));
                    }
                }
            }
        }
        "BatchWriteItem" => {
            for requests in r["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                for request in requests.as_array().into_iter().flatten() {
                    if !request["PutRequest"].is_null() {
                        out.extend(write(
                            "PutItem",
                            &request["PutRequest"],
                            indexes,
                            stored,
                            seen,
                            1.0,
                        ));
                    } else if !request["DeleteRequest"].is_null() {
                        out.extend(write(
                            "DeleteItem",
                            &request["DeleteRequest"],
                            indexes,
                            stored,
                            seen,
                            1.0,
                        ));
                    }
                }
            }
        }
        "GetItem" => {
            let item = object(&exchange.response["Item"]);
            let pk = r["Key"]["PK"]["S"].as_str().unwrap_or("?");
            let bytes = if item.is_empty() { 0 } else { item_size(&item) };
            out.push((
                table_key(pk),
                Units {
                    wcu: 0.0,
                    rcu: started(bytes, 4096) * read_factor,
                },
            ));
        }
        "BatchGetItem" => {
            // Every key asked for costs at least one unit, found or not.
            for (table, asked) in r["RequestItems"].as_object().into_iter().flatten() {
                let factor = if asked["ConsistentRead"].as_bool().unwrap_or(false) {
                    1.0
                } else {
                    0.5
                };
                let found: BTreeMap<(String, String), usize> = exchange.response["Responses"]
                    [table]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| {
                        let item = object(i);
                        Some((key_of(&item)?, item_size(&item)))
                    })
                    .collect();
                for key in asked["Keys"].as_array().into_iter().flatten() {
                    let Some(key) = key_of(&object(key)) else {
                        continue;
                    };
                    let bytes = found.get(&key).copied().unwrap_or(0);
                    out.push((
                        table_key(&key.0),
                        Units {
                            wcu: 0.0,
                            rcu: started(bytes, 4096) * factor,
                        },
                    ));
                }
            }
        }
        "Query" | "Scan" => {
            let bytes: usize = exchange.response["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| item_size(&object(i)))
                .sum();
            let target = r["IndexName"].as_str().unwrap_or("table").to_owned();
            let value = if exchange.operation == "Scan" {
                "(scan)".to_owned()
            } else {
                expression::partition_value(r).unwrap_or_else(|| "?".to_owned())
            };
            out.push((
                PartitionKey { target, value },
                Units {
                    wcu: 0.0,
                    rcu: started(bytes, 4096) * read_factor,
                },
            ));
        }
        _ => {}
    }
    out
}

/// One write action (`action` holds `Item` or `Key`, and for updates the expression): the
/// table's units and each index entry it adds, changes or removes. `seen` holds each item
/// as the run last left it, so that an update knows which indexes held the item before.
fn write(
    op: &str,
    action: &Value,
    indexes: &[IndexShape],
    stored: &Stored,
    seen: &mut BTreeMap<(String, String), BTreeMap<String, Value>>,
    factor: f64,
) -> Vec<(PartitionKey, Units)> {
    let key = if op == "PutItem" {
        key_of(&object(&action["Item"]))
    } else {
        key_of(&object(&action["Key"]))
    };
    let Some(key) = key else {
        return Vec::new();
    };
    let before = seen.get(&key).cloned();
    let after = match op {
        "PutItem" => Some(object(&action["Item"])),
        "DeleteItem" => None,
        _ => stored
            .get(&key)
            .map(|i| (*i).clone())
            .or_else(|| before.clone()),
    };
    let size_of = |item: &Option<BTreeMap<String, Value>>| item.as_ref().map_or(0, item_size);
    let bytes = size_of(&before).max(size_of(&after));
    let mut out = vec![(
        table_key(&key.0),
        Units {
            wcu: started(bytes, 1024) * factor,
            rcu: 0.0,
        },
    )];
    if op == "ConditionCheck" {
        return out;
    }
    let changed: Vec<String> = match op {
        "UpdateItem" => {
            let (set, removed) = expression::updated_attributes(action);
            set.into_iter().chain(removed).collect()
        }
        // A put or a delete changes every attribute of the item.
        _ => before
            .iter()
            .chain(after.iter())
            .flat_map(|i| i.keys().cloned())
            .collect(),
    };
    for index in indexes {
        let keys: Vec<&str> = index.key.iter().map(|(name, _)| name.as_str()).collect();
        let within = |item: &Option<BTreeMap<String, Value>>| {
            item.as_ref()
                .is_some_and(|i| keys.iter().all(|k| i.contains_key(*k)))
        };
        let entry = |item: &BTreeMap<String, Value>| -> usize {
            if index.projection == "ALL" {
                item_size(item)
            } else {
                let mut wanted: Vec<&str> = vec!["PK", "SK"];
                wanted.extend(keys.iter().copied());
                item.iter()
                    .filter(|(name, _)| wanted.contains(&name.as_str()))
                    .map(|(name, value)| size::attribute_size(name, value))
                    .sum()
            }
        };
        let touched = changed.iter().any(|c| keys.contains(&c.as_str()))
            || (index.projection == "ALL" && !changed.is_empty());
        let charged = match (within(&before), within(&after)) {
            (false, false) => None,
            (true, false) => before.as_ref(),
            (false, true) => after.as_ref(),
            (true, true) if touched => after.as_ref(),
            (true, true) => None,
        };
        if let Some(item) = charged {
            let partition = item.get(keys[0]).map_or("?".to_owned(), size::scalar);
            out.push((
                PartitionKey {
                    target: index.name.clone(),
                    value: partition,
                },
                Units {
                    wcu: started(entry(item), 1024),
                    rcu: 0.0,
                },
            ));
        }
    }
    match after {
        Some(item) => {
            seen.insert(key, item);
        }
        None => {
            seen.remove(&key);
        }
    }
    out
}
