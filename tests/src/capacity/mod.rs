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

mod charge;
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
use eventstore_dynamodb::events_table_shape;
use serde_json::Value;

pub use report::{hot_key_table, hot_keys, operations_table, HotKey, KeyClass, Target};
pub use size::{item_json, item_size};
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
        let operation = crate::faults::operation(cfg).to_owned();
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
    /// Requests that wrote to each partition key (of the table or an index).
    pub writes_by_key: BTreeMap<PartitionKey, u32>,
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
        let stored: charge::Stored = stored
            .iter()
            .filter_map(|item| Some((charge::key_of(item)?, item)))
            .collect();
        let mut ledgers: BTreeMap<String, Ledger> = BTreeMap::new();
        let mut seen = BTreeMap::new();
        for exchange in exchanges {
            let mut charges = Vec::new();
            if exchange.status == 200 {
                charges = charge::charge(exchange, &shape.indexes, &stored, &mut seen);
            }
            let ledger = ledgers.entry(exchange.phase.clone()).or_default();
            let entry = ledger
                .by_operation
                .entry(exchange.operation.clone())
                .or_default();
            entry.0 += 1;
            for (key, units) in charges {
                entry.1 += units;
                if units.wcu > 0.0 {
                    *ledger.writes_by_key.entry(key.clone()).or_default() += 1;
                }
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
        for (key, writes) in &other.writes_by_key {
            *out.writes_by_key.entry(key.clone()).or_default() += writes;
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
