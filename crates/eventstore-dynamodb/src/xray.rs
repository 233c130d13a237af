//! X-Ray subsegments from `tracing` spans, so that a trace shows each DynamoDB request and
//! each step of the sequencer, the projector and the publisher inside the Lambda segment.
//!
//! Lambda runs the X-Ray daemon beside the function (`AWS_XRAY_DAEMON_ADDRESS`) and puts the
//! invocation's trace header in `_X_AMZN_TRACE_ID` (the Rust runtime sets it for each
//! invocation). [`XRayLayer`] sends, when a span closes, a subsegment document to the daemon
//! over UDP: the span's name, start and end, its parent (the enclosing exported span, else
//! the function's segment), and for an SDK call the service and operation. Only sampled
//! invocations are sent, and only two kinds of spans: the AWS SDK's operation spans (those
//! with an `rpc.service` field) and the store's own (targets `eventstore*`). Sending is one
//! non-blocking UDP datagram per span; a failure to send is dropped, never an error.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter, LevelFilter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The Lambda functions' subscriber: the log lines lambda_runtime's default subscriber
/// writes (JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, the level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO), and, where the X-Ray daemon runs,
/// [`XRayLayer`] with its own filter, so that the SDK's debug-level operation spans reach
/// X-Ray without their log lines.
pub fn init_lambda_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let logs = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time();
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let xray = XRayLayer::from_env().map(|l| l.with_filter(filter_fn(XRayLayer::exports)));
    // Already set (a test harness): keep that one.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(logs))
        .with(xray)
        .try_init();
}

/// Sends finished spans to the X-Ray daemon as subsegments.
#[derive(Debug)]
pub struct XRayLayer {
    socket: UdpSocket,
    daemon: SocketAddr,
}

/// What the layer keeps on a span until it closes.
struct Timing {
    id: String,
    start: f64,
    fields: BTreeMap<&'static str, String>,
}

/// The invocation's trace header: `Root=1-...;Parent=...;Sampled=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: String,
    pub sampled: bool,
}

impl TraceHeader {
    pub fn parse(header: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        let mut sampled = false;
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v.to_owned()),
                Some(("Parent", v)) => parent = Some(v.to_owned()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        Some(Self {
            root: root?,
            parent: parent?,
            sampled,
        })
    }

    fn from_env() -> Option<Self> {
        std::env::var("_X_AMZN_TRACE_ID")
            .ok()
            .and_then(|h| Self::parse(&h))
    }
}

impl XRayLayer {
    /// The layer for the daemon `AWS_XRAY_DAEMON_ADDRESS` names (`host:port`, or
    /// `tcp:host:port udp:host:port`); `None` outside Lambda or with tracing off.
    pub fn from_env() -> Option<Self> {
        let setting = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?;
        let udp = setting
            .split_whitespace()
            .find_map(|p| p.strip_prefix("udp:"))
            .unwrap_or(&setting);
        let daemon = udp.to_socket_addrs().ok()?.next()?;
        Self::new(daemon).ok()
    }

    pub fn new(daemon: SocketAddr) -> std::io::Result<Self> {
        let local: SocketAddr = if daemon.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket, daemon })
    }

    /// Whether a span becomes a subsegment: the SDK's operations and the store's steps.
    pub fn exports(metadata: &Metadata<'_>) -> bool {
        metadata.is_span()
            && (metadata.fields().field("rpc.service").is_some()
                || metadata.target().starts_with("eventstore"))
    }

    fn send(&self, document: &Value) {
        let datagram = format!("{{\"format\": \"json\", \"version\": 1}}\n{document}");
        // Dropped if the daemon is busy or gone: tracing must never fail the work.
        let _ = self.socket.send_to(datagram.as_bytes(), self.daemon);
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A random 64-bit id in the 16 hex digits X-Ray expects.
fn segment_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for XRayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !Self::exports(attrs.metadata()) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        span.extensions_mut().insert(Timing {
            id: segment_id(),
            start: now(),
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(timing) = span.extensions_mut().get_mut::<Timing>() {
                values.record(&mut Fields(&mut timing.fields));
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(timing) = span.extensions_mut().remove::<Timing>() else {
            return;
        };
        let Some(header) = TraceHeader::from_env().filter(|h| h.sampled) else {
            return;
        };
        let parent = span
            .scope()
            .skip(1)
            .find_map(|s| s.extensions().get::<Timing>().map(|t| t.id.clone()))
            .unwrap_or(header.parent);
        self.send(&subsegment(
            &header.root,
            &parent,
            span.name(),
            &timing,
            now(),
        ));
    }
}

/// The subsegment document for a finished span.
fn subsegment(trace_id: &str, parent: &str, name: &str, timing: &Timing, end: f64) -> Value {
    let mut doc = json!({
        "type": "subsegment",
        "trace_id": trace_id,
        "parent_id": parent,
        "id": timing.id,
        "name": name.chars().take(200).collect::<String>(),
        "start_time": timing.start,
        "end_time": end,
    });
    if let (Some(service), Some(operation)) = (
        timing.fields.get("rpc.service"),
        timing.fields.get("rpc.method"),
    ) {
        doc["namespace"] = json!("aws");
        doc["name"] = json!(service);
        doc["aws"] = json!({ "operation": operation });
    } else if !timing.fields.is_empty() {
        doc["metadata"] = json!({ "eventstore": timing.fields });
    }
    doc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tracing::Instrument;

    use super::*;

    #[test]
    fn the_trace_header_gives_root_parent_and_sampling() {
        let h = TraceHeader::parse(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1",
        )
        .unwrap();
        assert_eq!(h.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(h.parent, "53995c3f42cd8ad8");
        assert!(h.sampled);
        assert!(
            !TraceHeader::parse("Root=1-a-b;Parent=c;Sampled=0")
                .unwrap()
                .sampled
        );
        assert_eq!(TraceHeader::parse("Sampled=1"), None);
    }

    #[test]
    fn closed_spans_reach_the_daemon_as_nested_subsegments_and_sdk_calls_name_their_operation() {
        let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
        daemon
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let layer = XRayLayer::new(daemon.local_addr().unwrap()).unwrap();
        // Process-wide, but no other test in this crate reads it.
        std::env::set_var(
            "_X_AMZN_TRACE_ID",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(
                async {
                    let sdk = tracing::info_span!(
                        target: "aws_sdk_dynamodb::operation::query",
                        "DynamoDB.Query",
                        "rpc.service" = "DynamoDB",
                        "rpc.method" = "Query"
                    );
                    async {}.instrument(sdk).await;
                    // Not exported: neither an SDK operation nor the store's.
                    async {}
                        .instrument(tracing::info_span!(target: "hyper", "poll"))
                        .await;
                }
                .instrument(tracing::info_span!(
                    target: "eventstore_dynamodb::sequencer",
                    "sequencer.round",
                    streams = 3
                )),
            );
        });
        std::env::remove_var("_X_AMZN_TRACE_ID");
        let mut docs = Vec::new();
        let mut buf = [0u8; 65536];
        for _ in 0..2 {
            let n = daemon.recv(&mut buf).unwrap();
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            let (header, body) = text.split_once('\n').unwrap();
            assert_eq!(header, r#"{"format": "json", "version": 1}"#);
            docs.push(serde_json::from_str::<Value>(body).unwrap());
        }
        // The inner span closes first.
        let (query, round) = (&docs[0], &docs[1]);
        assert_eq!(query["name"], "DynamoDB");
        assert_eq!(query["namespace"], "aws");
        assert_eq!(query["aws"]["operation"], "Query");
        assert_eq!(query["parent_id"], round["id"], "nested in the round");
        assert_eq!(round["name"], "sequencer.round");
        assert_eq!(
            round["parent_id"], "53995c3f42cd8ad8",
            "under the function's segment"
        );
        assert_eq!(round["metadata"]["eventstore"]["streams"], "3");
        for doc in &docs {
            assert_eq!(doc["type"], "subsegment");
            assert_eq!(doc["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
            assert_eq!(doc["id"].as_str().unwrap().len(), 16);
            assert!(doc["end_time"].as_f64() >= doc["start_time"].as_f64());
        }
        daemon
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        assert!(daemon.recv(&mut buf).is_err(), "nothing else was sent");
    }
}
