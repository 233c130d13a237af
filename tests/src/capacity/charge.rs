//! What one answered request costs, per partition key of the table and its indexes.

use std::collections::BTreeMap;

use eventstore_dynamodb::IndexShape;
use serde_json::Value;

use super::size::{self, item_size};
use super::{expression, Exchange, PartitionKey, Units};

pub(super) type Stored<'a> = BTreeMap<(String, String), &'a BTreeMap<String, Value>>;

/// The item's (PK, SK), from DynamoDB JSON.
pub(super) fn key_of(item: &BTreeMap<String, Value>) -> Option<(String, String)> {
    let s = |name: &str| item.get(name)?.get("S")?.as_str().map(str::to_owned);
    Some((s("PK")?, s("SK")?))
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
pub(super) fn charge(
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
        // The item as the run left it before, or else as it ended up, with what this update
        // sets plainly and removes: an item rewritten many times (the counter and its
        // claim) is charged at its size then, not at its final size.
        _ => before
            .clone()
            .or_else(|| stored.get(&key).map(|i| (*i).clone()))
            .map(|mut item| {
                for (name, value) in expression::set_values(action) {
                    item.insert(name, value);
                }
                let (set, removed) = expression::updated_attributes(action);
                for name in removed {
                    item.remove(&name);
                }
                // What the update computes (not a plain value) is taken as it ended up.
                for name in set {
                    if let (false, Some(value)) = (
                        item.contains_key(&name),
                        stored.get(&key).and_then(|i| i.get(&name)),
                    ) {
                        item.insert(name, value.clone());
                    }
                }
                item
            }),
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
