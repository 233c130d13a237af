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
    // `any`: the head (a Query), then the put (1 WCU) and its `Unsequenced` entry (1 WCU).
    assert_eq!(
        costs(&measured.phase("lone append")),
        expect(&[("PutItem", (1, 2.0, 0.0)), ("Query", (1, 0.0, 1.0))])
    );
    // A warm sequencer's round: the head and the hinted event in one BatchGetItem (the
    // record's new image is the event, so the stream is not read), then the claim on the
    // counter (1 WCU), then the roll: the event's position (1, its `GlobalOrder` entry and
    // its `Unsequenced` removal) and the head (1): 5 WCU, where the transaction took 14.
    assert_eq!(
        costs(&measured.phase("lone sequence")),
        expect(&[
            ("BatchGetItem", (1, 0.0, 2.0)),
            ("UpdateItem", (3, 5.0, 0.0))
        ])
    );
    // A caught-up reader's poll is one Query of the index (eventually consistent), and no
    // read of the counter item.
    let polls = POLLS as u32;
    assert_eq!(
        costs(&measured.phase("poll")),
        expect(&[("Query", (polls, 0.0, f64::from(polls) * 0.5))])
    );
}
