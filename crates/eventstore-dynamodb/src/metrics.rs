//! Metrics, as CloudWatch Embedded Metric Format (EMF) lines on stdout.
//!
//! Lambda sends stdout to CloudWatch Logs, which turns each EMF line into metric values: no
//! `PutMetricData` call on the hot path, no extra client, no extra IAM. Locally the same
//! lines appear in `make dev`'s output. Every metric is declared once, in [`ALL`]; the SAM
//! template's alarms and dashboard name them, and `tests/tests/infra.rs` keeps both sides
//! equal. The namespace is `METRICS_NAMESPACE` (the template sets `EventStore/<stack>`),
//! so each stack's metrics need no stack dimension.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// Where the namespace comes from, and what it is without it.
pub const NAMESPACE_VARIABLE: &str = "METRICS_NAMESPACE";
pub const DEFAULT_NAMESPACE: &str = "EventStore/local";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric the functions emit.
#[derive(Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    /// Dimension names it is also emitted under (it is always emitted without any, too).
    pub dimensions: &'static [&'static str],
    /// What it measures, for docs/operations.md and the dashboard.
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    unit: Unit,
    dimensions: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        unit,
        dimensions,
        help,
    }
}

pub const EVENTS_APPENDED: Metric = metric(
    "EventsAppended",
    Unit::Count,
    &[],
    "events written by appends (a retried append that wrote nothing counts 0)",
);
pub const APPEND_LATENCY: Metric = metric(
    "AppendLatency",
    Unit::Milliseconds,
    &[],
    "time to answer an append request, whatever the answer",
);
pub const REQUESTS_UNAVAILABLE: Metric = metric(
    "RequestsUnavailable",
    Unit::Count,
    &["Route"],
    "requests answered 503: DynamoDB throttled or failed after retries",
);
pub const EVENTS_SEQUENCED: Metric = metric(
    "EventsSequenced",
    Unit::Count,
    &[],
    "events given their global position",
);
pub const SEQUENCING_LAG: Metric = metric(
    "SequencingLag",
    Unit::Milliseconds,
    &[],
    "from an event's append to its global position, the largest of each batch",
);
pub const EVENTS_PER_TRANSACTION: Metric = metric(
    "EventsPerTransaction",
    Unit::Count,
    &[],
    "events sequenced per claim on the counter (the name is kept from when each claim was a transaction), averaged over a batch",
);
pub const LOST_ROUNDS: Metric = metric(
    "LostRounds",
    Unit::Count,
    &[],
    "sequencer rounds lost to another sequencer's claim on the counter and retried",
);
pub const SEQUENCING_FAILURES: Metric = metric(
    "SequencingFailures",
    Unit::Count,
    &[],
    "stream batches and sweeps the sequencer failed (both are retried)",
);
pub const STRANDED_STREAMS: Metric = metric(
    "StrandedStreams",
    Unit::Count,
    &[],
    "streams the sweep sequenced from a stream batch the stream path had given up on",
);
pub const UNREPLAYABLE_BATCHES: Metric = metric(
    "UnreplayableBatches",
    Unit::Count,
    &[],
    "failed stream batches the sweep could not replay: their records are gone from the stream",
);

pub const EVENTS_APPLIED: Metric = metric(
    "EventsApplied",
    Unit::Count,
    &["Projection"],
    "events a projection applied (parked ones are counted in EventsParked)",
);
pub const EVENTS_PARKED: Metric = metric(
    "EventsParked",
    Unit::Count,
    &["Projection"],
    "events a projection parked after refusing them 3 times",
);
pub const PROJECTION_LAG: Metric = metric(
    "ProjectionLag",
    Unit::Count,
    &["Projection"],
    "positions between a projection's checkpoint and the head, each minute",
);
pub const PROJECTION_FAILURES: Metric = metric(
    "ProjectionFailures",
    Unit::Count,
    &["Projection"],
    "catch-ups of a projection that failed (retried by the next trigger)",
);

pub const EVENTS_PUBLISHED: Metric = metric(
    "EventsPublished",
    Unit::Count,
    &["Publisher"],
    "events the publisher sent to the event bus (at least once: a retried page counts again)",
);
pub const PUBLISHER_PARKED: Metric = metric(
    "PublisherParked",
    Unit::Count,
    &["Publisher"],
    "events the publisher parked because EventBridge can never take them (over 256 KB, or refused)",
);
pub const PUBLISHER_LAG: Metric = metric(
    "PublisherLag",
    Unit::Count,
    &["Publisher"],
    "positions between the publisher's checkpoint and the head, each minute",
);
pub const PUBLISH_FAILURES: Metric = metric(
    "PublishFailures",
    Unit::Count,
    &["Publisher"],
    "publisher runs that failed (the bus kept refusing entries, or DynamoDB failed); retried",
);

/// Every metric, in docs/operations.md's order.
pub const ALL: &[&Metric] = &[
    &EVENTS_APPENDED,
    &APPEND_LATENCY,
    &REQUESTS_UNAVAILABLE,
    &EVENTS_SEQUENCED,
    &SEQUENCING_LAG,
    &EVENTS_PER_TRANSACTION,
    &LOST_ROUNDS,
    &SEQUENCING_FAILURES,
    &STRANDED_STREAMS,
    &UNREPLAYABLE_BATCHES,
    &EVENTS_APPLIED,
    &EVENTS_PARKED,
    &PROJECTION_LAG,
    &PROJECTION_FAILURES,
    &EVENTS_PUBLISHED,
    &PUBLISHER_PARKED,
    &PUBLISHER_LAG,
    &PUBLISH_FAILURES,
];

/// Values measured together, emitted as one EMF line.
#[derive(Debug, Default)]
pub struct Metrics {
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static Metric, f64)>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dimension value; metrics that declare this dimension are emitted under it
    /// (and, as always, without it).
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    pub fn put(&mut self, metric: &'static Metric, value: f64) -> &mut Self {
        self.values.push((metric, value));
        self
    }

    /// The EMF document, at `timestamp_ms` since the epoch.
    pub fn to_emf(&self, namespace: &str, timestamp_ms: u64) -> Value {
        let mut root = Map::new();
        let mut directives = Vec::new();
        for (metric, value) in &self.values {
            let mut sets: Vec<Vec<&str>> = vec![vec![]];
            let dims: Vec<&str> = metric
                .dimensions
                .iter()
                .copied()
                .filter(|d| self.dimensions.iter().any(|(name, _)| name == d))
                .collect();
            if !dims.is_empty() {
                sets.push(dims);
            }
            directives.push(json!({
                "Namespace": namespace,
                "Dimensions": sets,
                "Metrics": [{"Name": metric.name, "Unit": metric.unit.as_str()}],
            }));
            root.insert(metric.name.to_owned(), json!(value));
        }
        for (name, value) in &self.dimensions {
            root.insert((*name).to_owned(), json!(value));
        }
        root.insert(
            "_aws".to_owned(),
            json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
        );
        Value::Object(root)
    }

    /// Prints the values as one EMF line on stdout; nothing when there are none.
    pub fn emit(&self) {
        if self.values.is_empty() {
            return;
        }
        let namespace = std::env::var(NAMESPACE_VARIABLE)
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        println!("{}", self.to_emf(&namespace, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_each_metric_with_and_without_its_dimensions() {
        let mut m = Metrics::new().dimension("Route", "POST /streams/{streamId}/events");
        m.put(&EVENTS_APPENDED, 3.0).put(&REQUESTS_UNAVAILABLE, 1.0);
        assert_eq!(
            m.to_emf("EventStore/test", 1_700_000_000_000),
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000u64,
                    "CloudWatchMetrics": [
                        {"Namespace": "EventStore/test", "Dimensions": [[]],
                         "Metrics": [{"Name": "EventsAppended", "Unit": "Count"}]},
                        {"Namespace": "EventStore/test", "Dimensions": [[], ["Route"]],
                         "Metrics": [{"Name": "RequestsUnavailable", "Unit": "Count"}]},
                    ],
                },
                "EventsAppended": 3.0,
                "RequestsUnavailable": 1.0,
                "Route": "POST /streams/{streamId}/events",
            })
        );
    }

    #[test]
    fn every_metric_has_one_name() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
