//! The capacity report (`make bench` runs it): what appending, sequencing and polling cost
//! in write and read units, from every DynamoDB request of a run on the local DynamoDB
//! (counted on the wire, `eventstore_tests::capacity`), and the load a target rate puts on
//! the busiest partition key of the table and of each index. It reports; it asserts
//! nothing (`tests/tests/capacity.rs` holds the assertions).
//!
//! Usage: capacity-bench [events=1000] [bytes=600] [rate=10000] [streams=1000] [types=20]
//! [categories=20] [hot=0.5] [readers=10] [polls=4]
//!
//! The run (`capacity::measure`) appends `events` single events with `bytes` of data each
//! (600 makes an item of about 1 KB) over min(`streams`, `events` / 2) streams, `hot` of
//! them of one type and in one category; sequences them; then polls `$all` caught up. A
//! lone event is measured on its own first. `rate`, `streams`, `hot`, `readers` and
//! `polls` (per reader per second) are the target the busiest keys are sized for.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use eventstore_tests::capacity::{
    hot_key_table, hot_keys, measure, operations_table, Target, Workload, POLLS,
};

fn settings() -> BTreeMap<String, f64> {
    let mut s: BTreeMap<String, f64> = [
        ("events", 1000.0),
        ("bytes", 600.0),
        ("rate", 10_000.0),
        ("streams", 1000.0),
        ("types", 20.0),
        ("categories", 20.0),
        ("hot", 0.5),
        ("readers", 10.0),
        ("polls", 4.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for arg in std::env::args().skip(1) {
        let (k, v) = arg
            .split_once('=')
            .unwrap_or_else(|| panic!("arguments are name=value, got {arg}"));
        assert!(s.contains_key(k), "unknown setting {k}");
        s.insert(k.to_owned(), v.parse().unwrap());
    }
    s
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let s = settings();
    let events = s["events"] as usize;
    let measured = measure(Workload {
        events,
        bytes: s["bytes"] as usize,
        streams: s["streams"] as usize,
        types: s["types"] as usize,
        categories: s["categories"] as usize,
        hot: s["hot"],
    })
    .await;
    let phase = |p: &str| measured.phase(p);
    println!("## What each phase cost\n");
    println!(
        "{}",
        operations_table(&[
            ("lone append", &phase("lone append"), 1),
            ("lone sequence", &phase("lone sequence"), 1),
            ("lone append again", &phase("lone append again"), 1),
            ("lone sequence again", &phase("lone sequence again"), 1),
            ("append", &phase("append"), events),
            ("sequence", &phase("sequence"), events),
            ("poll (per poll)", &phase("poll"), POLLS),
        ])
    );
    let (found, pages) = measured.type_read;
    let read = phase("type read");
    let queries = read.by_operation.get("Query").map_or(0, |(n, _)| *n);
    println!(
        "A reader of a rarer type, from position 1 to the end ({} positions): {found} events in {pages} pages of at most 100, {queries} Query requests, {:.1} RCU: {:.2} RCU per position passed over, {:.2} per event of the type.\n",
        events + 3,
        read.total().rcu,
        read.total().rcu / (events + 3) as f64,
        read.total().rcu / found.max(1) as f64
    );
    let lone = phase("lone append").total().wcu + phase("lone sequence").total().wcu;
    let again = phase("lone append again").total().wcu + phase("lone sequence again").total().wcu;
    let batched = phase("append").merged(&phase("sequence"));
    println!(
        "A lone event ({} bytes as stored): {lone:.0} WCU to append and sequence as a new stream's first, {again:.0} as the next event of a stream the sequencer knows. The run: {:.2} WCU per event.\n",
        measured.lone_item_bytes,
        batched.total().wcu / events as f64
    );
    let target = Target {
        rate: s["rate"],
        streams: s["streams"],
        hot_type_share: s["hot"],
        hot_category_share: s["hot"],
        readers: s["readers"],
        polls_per_second: s["polls"],
    };
    let run_streams = (s["streams"] as usize).min(events / 2).max(1);
    let keys = hot_keys(
        &batched,
        events,
        run_streams,
        &phase("poll"),
        POLLS,
        &target,
    );
    println!("## The busiest partition keys\n");
    println!("{}", hot_key_table(&keys, &target));
    let counter = eventstore_tests::capacity::PartitionKey {
        target: "table".to_owned(),
        value: "COUNTER#ALL".to_owned(),
    };
    let claims = phase("sequence")
        .writes_by_key
        .get(&counter)
        .copied()
        .unwrap_or(0);
    if claims > 0 {
        let per_claim = events as f64 / f64::from(claims);
        println!(
            "The sequencer wrote {claims} claims on the counter item, {per_claim:.1} events each: at {} events/s and that batching, {:.0} conditional writes a second on it, each after the one before (about 40 a second at 25 ms a round trip; a claim takes up to 1,000 events, so at the target rate batches grow until the counter keeps up).",
            target.rate,
            target.rate / per_claim
        );
    }
}
