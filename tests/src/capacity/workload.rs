//! The workload the capacity report measures: a lone event appended and sequenced on its
//! own, then `events` single-event appends spread over streams, types and categories,
//! sequenced together, then a caught-up reader polling `$all`.

use std::collections::BTreeMap;

use eventstore_core::{AppendBatch, ExpectedVersion, GlobalFilter, NewEvent, StreamId};
use eventstore_dynamodb::trigger::LocalEventSource;
use eventstore_dynamodb::Sequencer;

use super::{item_json, CapacityRecorder, Ledger};
use crate::{event, TestStore};

/// Polls of the caught-up reader.
pub const POLLS: usize = 20;

/// The shape of a run.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub events: usize,
    /// Bytes of each event's `data`.
    pub bytes: usize,
    pub streams: usize,
    pub types: usize,
    pub categories: usize,
    /// Share of the events of the first type, and of the streams of the first category.
    pub hot: f64,
}

/// Each phase's ledger (`lone append`, `lone sequence`, `append`, `sequence`, `poll`,
/// `type read`), the size of the lone event's item as stored, and what the type read found.
#[derive(Debug)]
pub struct Measured {
    pub ledgers: BTreeMap<String, Ledger>,
    pub lone_item_bytes: usize,
    /// A reader of one of the rarer types, from position 1 to the end of the log in pages
    /// of 100: (events of the type it got, pages it read).
    pub type_read: (usize, usize),
}

impl Measured {
    pub fn phase(&self, name: &str) -> Ledger {
        self.ledgers.get(name).cloned().unwrap_or_default()
    }
}

/// The `i`th of `n` choices, the first `hot` of the time, the others in turn.
fn pick(i: usize, n: usize, hot: f64) -> usize {
    let x = (i as f64 * 0.618_033_988_75).fract();
    if x < hot || n < 2 {
        0
    } else {
        1 + i % (n - 1)
    }
}

fn data(bytes: usize) -> String {
    format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes.saturating_sub(10)))
}

async fn append(t: &TestStore, stream: &StreamId, event: NewEvent) {
    t.store
        .append(
            stream,
            ExpectedVersion::Any,
            &AppendBatch::new(vec![event]).unwrap(),
        )
        .await
        .unwrap();
}

async fn drain(sequencer: &Sequencer, source: &mut LocalEventSource) {
    while source.drain(&|e| sequencer.handle(e)).await.unwrap() > 0 {}
}

/// Runs `w` on a fresh table of the local DynamoDB and accounts for every request.
pub async fn measure(w: Workload) -> Measured {
    let recorder = CapacityRecorder::default();
    let t = TestStore::with_fault(recorder.clone()).await;
    let sequencer = Sequencer::new(t.store.log().clone());
    let mut source = sequencer.local_source().await.unwrap();

    // A warm sequencer, as in the steady state: it knows the counter from its last round.
    recorder.phase("warm up");
    let warm = StreamId::parse("Warm-1", "streamId").unwrap();
    append(&t, &warm, event("Warm", &data(w.bytes))).await;
    drain(&sequencer, &mut source).await;

    recorder.phase("lone append");
    let lone = StreamId::parse("Lone-1", "streamId").unwrap();
    append(&t, &lone, event("Lone", &data(w.bytes))).await;
    recorder.phase("lone sequence");
    drain(&sequencer, &mut source).await;
    // The stream's next event: the sequencer knows where the stream ends from its claim.
    recorder.phase("lone append again");
    append(&t, &lone, event("Lone", &data(w.bytes))).await;
    recorder.phase("lone sequence again");
    drain(&sequencer, &mut source).await;

    let streams = w.streams.min(w.events / 2).max(1);
    recorder.phase("append");
    for i in 0..w.events {
        let category = pick(i % streams, w.categories, w.hot);
        let stream = StreamId::parse(&format!("C{category}-{}", i % streams), "streamId").unwrap();
        let event_type = format!("T{}", pick(i, w.types, w.hot));
        append(&t, &stream, event(&event_type, &data(w.bytes))).await;
    }
    recorder.phase("sequence");
    drain(&sequencer, &mut source).await;

    recorder.phase("poll");
    // After the warm-up event, the two lone events and the workload's.
    let next = (w.events + 4) as u64;
    for _ in 0..POLLS {
        let page = t
            .store
            .read_global(&GlobalFilter::All, Some(next), 100)
            .await
            .unwrap();
        assert!(page.events.is_empty(), "a caught-up reader got events");
    }

    // One of the rarer types, read from the start: the read passes over the other events.
    recorder.phase("type read");
    let rare = GlobalFilter::EventType(
        eventstore_core::EventType::parse(&format!("T{}", w.types.min(2) - 1), "eventType")
            .unwrap(),
    );
    let (mut found, mut pages, mut from) = (0, 0, 1);
    while from < next {
        let page = t.store.read_global(&rare, Some(from), 100).await.unwrap();
        found += page.events.len();
        pages += 1;
        assert!(
            page.next > from || !page.events.is_empty(),
            "a read made no progress"
        );
        from = page.next;
    }

    recorder.phase("scan");
    let exchanges = recorder.take();
    let stored: Vec<_> = t.all_items().await.iter().map(item_json).collect();
    let lone_item_bytes = stored
        .iter()
        .find(|i| {
            i.get("PK").and_then(|v| v["S"].as_str()) == Some("STREAM#Lone-1")
                && i.contains_key("eventId")
        })
        .map_or(0, super::item_size);
    Measured {
        ledgers: Ledger::per_phase(&exchanges, &stored),
        lone_item_bytes,
        type_read: (found, pages),
    }
}
