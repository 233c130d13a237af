//! What the layout costs in capacity units, from the requests on the wire
//! (`eventstore_tests::capacity`; `make bench` prints the full report with the busiest keys
//! at a target rate). These figures are today's layout: a change to it changes them here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use eventstore_tests::capacity::{measure, Ledger, Workload, POLLS};

/// (requests, WCU, RCU) per operation.
fn costs(ledger: &Ledger) -> BTreeMap<String, (u32, f64, f64)> {
    ledger
        .by_operation
        .iter()
        .map(|(op, (n, u))| (op.clone(), (*n, u.wcu, u.rcu)))
        .collect()
}

fn expect(pairs: &[(&str, (u32, f64, f64))]) -> BTreeMap<String, (u32, f64, f64)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn a_lone_event_and_a_caught_up_poll_cost_what_the_layout_says() {
    let measured = measure(Workload {
        events: 40,
        bytes: 600,
        streams: 20,
        types: 4,
        categories: 4,
        hot: 0.5,
    })
    .await;
    assert!(
        (800..=1024).contains(&measured.lone_item_bytes),
        "a 1 KB event item, not {}",
        measured.lone_item_bytes
    );
    // `any`: the stream's last version (a Query), then the put (1 WCU).
    assert_eq!(
        costs(&measured.phase("lone append")),
        expect(&[("PutItem", (1, 1.0, 0.0)), ("Query", (1, 0.0, 1.0))])
    );
    // A warm sequencer's round on a new stream: the imaged event read once (version 1:
    // nothing before it; the record's new image is the event, so the stream is not
    // Queried), then the claim on the counter (1 WCU), then the roll: the event's position
    // (1, and its `GlobalOrder` entry 1): 3 WCU, and 4 with the append, where the
    // transaction took 14 and the append 2.
    assert_eq!(
        costs(&measured.phase("lone sequence")),
        expect(&[
            ("BatchGetItem", (1, 0.0, 1.0)),
            ("UpdateItem", (2, 3.0, 0.0))
        ])
    );
    // The stream's next event: the sequencer knows where its claim left the stream, so it
    // reads nothing. Two dependent requests, the claim and the position.
    assert_eq!(
        costs(&measured.phase("lone append again")),
        expect(&[("PutItem", (1, 1.0, 0.0)), ("Query", (1, 0.0, 1.0))])
    );
    assert_eq!(
        costs(&measured.phase("lone sequence again")),
        expect(&[("UpdateItem", (2, 3.0, 0.0))])
    );
    // A caught-up reader's poll is one Query of the index (eventually consistent), and no
    // read of the counter item.
    let polls = POLLS as u32;
    assert_eq!(
        costs(&measured.phase("poll")),
        expect(&[("Query", (polls, 0.0, f64::from(polls) * 0.5))])
    );
}

/// The goal, sized from a run on the wire: 10,000 events of about 1 KB a second over
/// 1,000 streams, one type and one category taking half of them, ten readers polling
/// `$all` four times a second. No partition key of the table or of any index may take more
/// than DynamoDB's 1,000 WCU or 3,000 RCU a second. An index keyed by type or category,
/// or a counter per type, fails this (5,000 WCU/s on the busiest type's key).
#[tokio::test]
async fn no_partition_key_goes_over_its_limit_at_ten_thousand_events_a_second() {
    use eventstore_tests::capacity::{hot_key_table, hot_keys, Target};
    let events = 200;
    let streams = 100;
    let measured = measure(Workload {
        events,
        bytes: 600,
        streams,
        types: 20,
        categories: 20,
        hot: 0.5,
    })
    .await;
    let target = Target {
        rate: 10_000.0,
        streams: 1000.0,
        hot_type_share: 0.5,
        hot_category_share: 0.5,
        readers: 10.0,
        polls_per_second: 4.0,
    };
    let writing = measured.phase("append").merged(&measured.phase("sequence"));
    let keys = hot_keys(
        &writing,
        events,
        streams,
        &measured.phase("poll"),
        POLLS,
        &target,
    );
    let table = hot_key_table(&keys, &target);
    assert!(keys.iter().all(|k| !k.over_limit()), "{table}");

    // Every kind of key the layout writes is sized, so a new hot one cannot go unseen.
    let classes: Vec<String> = keys.iter().map(|k| format!("{:?}", k.class)).collect();
    assert_eq!(
        classes,
        ["Stream", "GlobalCounter", "GlobalBucket"],
        "{table}"
    );
}
