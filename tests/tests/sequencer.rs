//! The sequencer: dense, unique global positions in stream order, each event exactly once,
//! whatever the stream records' order, duplication or loss, and with sequencers racing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lambda_events::event::dynamodb::Event;
use eventstore_core::{AppendBatch, ExpectedVersion, StreamId};
use eventstore_dynamodb::{DynamoEventLog, Sequencer};
use eventstore_tests::{assert_dense_and_in_stream_order, event, stream, TestStore};
use serde_json::{json, Value};

fn fixture() -> Value {
    let path = format!(
        "{}/fixtures/dynamodb/sequencer-batch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A stream record for `stream` at `version`, made from the fixture's first record.
fn record(stream: &StreamId, version: u64, sequence: u64) -> Value {
    let mut r = fixture()["Records"][0].clone();
    let keys = json!({
        "PK": {"S": format!("STREAM#{stream}")},
        "SK": {"S": format!("VERSION#{version:020}")},
    });
    r["dynamodb"]["Keys"] = keys.clone();
    r["dynamodb"]["NewImage"] = keys;
    r["dynamodb"]["SequenceNumber"] = json!(sequence.to_string());
    r
}

fn batch(records: Vec<Value>) -> Event {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

async fn append(t: &TestStore, stream: &StreamId, types: &[&str]) {
    let events = types.iter().map(|ty| event(ty, "{}")).collect();
    t.store
        .append(
            stream,
            ExpectedVersion::Any,
            &AppendBatch::new(events).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_handler_sequences_a_real_stream_event_and_ignores_what_is_not_an_event() {
    let t = TestStore::new().await;
    let account = StreamId::parse("Account-fx", "s").unwrap();
    let order = StreamId::parse("Order-fx", "s").unwrap();
    append(&t, &account, &["AccountOpened", "MoneyDeposited"]).await;
    append(&t, &order, &["OrderPlaced"]).await;
    let event: Event = serde_json::from_value(fixture()).unwrap();
    let response = t.sequencer().await.handle(event).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        t.positions().await,
        vec![
            ("Account-fx".to_owned(), 1, Some(1)),
            ("Account-fx".to_owned(), 2, Some(2)),
            ("Order-fx".to_owned(), 1, Some(3)),
        ]
    );
    assert_eq!(t.counter("COUNTER#ALL").await, 3);
}

#[tokio::test]
async fn duplicated_reordered_and_dropped_then_redelivered_records_sequence_each_event_once() {
    let t = TestStore::new().await;
    let a = stream("Account");
    let b = stream("Account");
    let c = stream("Order");
    append(&t, &a, &["Opened", "Deposited", "Deposited"]).await;
    append(&t, &b, &["Opened"]).await;
    append(&t, &c, &["Placed", "Paid"]).await;
    let sequencer = t.sequencer().await;

    // Newest first and duplicated; b's record is lost for now.
    let first = batch(vec![
        record(&a, 3, 10),
        record(&c, 2, 11),
        record(&a, 1, 12),
        record(&a, 3, 13),
    ]);
    let response = sequencer.handle(first.clone()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let after_first = t.positions().await;
    // Each hinted stream is sequenced up to the newest hinted version, in version order:
    // a (hinted first) takes 1..=3, then c takes 4..=5. b is untouched.
    let got = |s: &StreamId| -> Vec<Option<u64>> {
        after_first
            .iter()
            .filter(|(id, _, _)| id == s.as_str())
            .map(|(_, _, p)| *p)
            .collect()
    };
    assert_eq!(got(&a), vec![Some(1), Some(2), Some(3)]);
    assert_eq!(got(&c), vec![Some(4), Some(5)]);
    assert_eq!(got(&b), vec![None]);

    // The whole batch again (an at-least-once redelivery) changes nothing.
    sequencer.handle(first).await.unwrap();
    assert_eq!(t.positions().await, after_first);

    // b's record finally arrives, with a stale duplicate of c's.
    sequencer
        .handle(batch(vec![record(&c, 1, 14), record(&b, 1, 15)]))
        .await
        .unwrap();
    let positions = t.positions().await;
    assert_dense_and_in_stream_order(&positions);
    let b_position = positions
        .iter()
        .find(|(id, _, _)| id == b.as_str())
        .unwrap()
        .2;
    assert_eq!(b_position, Some(6));
    assert_eq!(t.counter("COUNTER#ALL").await, 6);
}

#[tokio::test]
async fn a_hint_for_a_version_nobody_wrote_is_ignored() {
    let t = TestStore::new().await;
    let a = stream("Account");
    append(&t, &a, &["Opened"]).await;
    let ghost = stream("Ghost");
    let response = t
        .sequencer()
        .await
        .handle(batch(vec![record(&ghost, 4, 1), record(&a, 9, 2)]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(t.positions().await, vec![(a.to_string(), 1, Some(1))]);
}

#[tokio::test]
async fn a_failing_batch_reports_its_first_record_for_retry() {
    let config = eventstore_tests::sdk_config().await;
    let log = DynamoEventLog::new(aws_sdk_dynamodb::Client::new(&config), "no-such-table");
    let a = stream("Account");
    let response = Sequencer::new(log)
        .handle(batch(vec![record(&a, 1, 77), record(&a, 2, 78)]))
        .await
        .unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![Some("77".to_owned())]);
}

#[tokio::test]
async fn two_sequencers_racing_assign_each_position_once() {
    let t = TestStore::new().await;
    let streams: Vec<StreamId> = (0..12).map(|i| stream(["A", "B", "C"][i % 3])).collect();
    let types_of = |i: usize| -> Vec<&str> {
        ["X", "Y", "Z"]
            .iter()
            .cycle()
            .take(1 + i % 4)
            .copied()
            .collect()
    };
    for (i, s) in streams.iter().enumerate() {
        append(&t, s, &types_of(i)).await;
    }
    // One record per stream, naming its newest version, as the stream's last insert would.
    let records = |range: std::ops::Range<usize>, appends: usize| -> Vec<Value> {
        range
            .map(|i| {
                let newest = (0..appends).map(|a| types_of(i + a).len() as u64).sum();
                record(&streams[i], newest, i as u64 + 1)
            })
            .collect()
    };
    let (one, two) = (t.sequencer().await, t.sequencer().await);

    // Disjoint streams at the same moment: only the counters keep them from taking the
    // same positions.
    let (r1, r2) = tokio::join!(
        one.handle(batch(records(0..6, 1))),
        two.handle(batch(records(6..12, 1)))
    );
    assert!(r1.unwrap().batch_item_failures.is_empty());
    assert!(r2.unwrap().batch_item_failures.is_empty());
    assert_dense_and_in_stream_order(&t.positions().await);

    // The same streams, one sequencer newest first: the same events are contested.
    for (i, s) in streams.iter().enumerate() {
        append(&t, s, &types_of(i + 1)).await;
    }
    let mut reversed = records(0..12, 2);
    reversed.reverse();
    let (r1, r2) = tokio::join!(
        one.handle(batch(records(0..12, 2))),
        two.handle(batch(reversed))
    );
    assert!(r1.unwrap().batch_item_failures.is_empty());
    assert!(r2.unwrap().batch_item_failures.is_empty());
    let positions = t.positions().await;
    assert_eq!(positions.len(), 30 + 30);
    assert_dense_and_in_stream_order(&positions);
    assert_eq!(t.counter("COUNTER#ALL").await, 60);
}

#[tokio::test]
async fn concurrent_writers_on_many_streams_end_dense_and_in_stream_order() {
    let t = std::sync::Arc::new(TestStore::new().await);
    let streams: Vec<StreamId> = (0..10).map(|i| stream(["Order", "Cart"][i % 2])).collect();
    // The local event source feeds the sequencer while 6 writers append.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (t, done) = (t.clone(), done.clone());
        tokio::spawn(async move {
            let sequencer = t.sequencer().await;
            let mut source = sequencer.local_source().await.unwrap();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let read = source.drain(&|e| sequencer.handle(e)).await.unwrap();
                if finished && read == 0 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (t, streams) = (t.clone(), streams.clone());
            tokio::spawn(async move {
                for i in 0..15 {
                    let s = &streams[(w * 7 + i * 3) % streams.len()];
                    let n = 1 + (i % 3);
                    let types: Vec<&str> = ["Placed", "Paid", "Shipped"][..n].to_vec();
                    append(&t, s, &types).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.await.unwrap();
    let positions = t.positions().await;
    // 6 writers x 15 appends of 1, 2 or 3 events (5 of each size).
    assert_eq!(positions.len(), 6 * 5 * (1 + 2 + 3));
    assert_dense_and_in_stream_order(&positions);
}

#[tokio::test]
async fn records_carrying_their_events_are_sequenced_without_reading_the_stream_and_a_record_of_nothing_is_ignored(
) {
    let t = TestStore::new().await;
    let a = stream("Account");
    append(&t, &a, &["Opened", "Deposited"]).await;
    let images = images_of(&t, &a).await;
    let records = records_of(&a, &images, 10);
    assert_eq!(records.len(), 2);
    // On the store's own client, so that its requests are counted; warmed by one round,
    // so that it knows the counter, as in the steady state.
    let sequencer = Sequencer::new(t.store.log().clone());
    let warm = stream("Warm");
    append(&t, &warm, &["Opened"]).await;
    sequencer
        .sequence(&[eventstore_dynamodb::StreamHint {
            stream: warm.clone(),
            version: 1,
        }])
        .await
        .unwrap();
    t.requests.take();
    let response = sequencer.handle(batch(records)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        t.requests.take(),
        counts(&[("BatchGetItem", 1), ("UpdateItem", 3)]),
        "the first imaged event (version 1: none before it) in one read, then the claim, \
         then the two positions: no Query of the stream, no read of the counter"
    );

    // The steady state: the next record of a stream this sequencer claimed follows on
    // from where its claim left the stream, so nothing is read at all.
    append(&t, &a, &["Deposited"]).await;
    let third = images_of(&t, &a).await.split_off(2);
    let response = sequencer
        .handle(batch(records_of(&a, &third, 20)))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        t.requests.take(),
        counts(&[("UpdateItem", 2)]),
        "the claim, then the position: two dependent requests"
    );
    assert_eq!(
        t.positions().await,
        vec![
            (a.as_str().to_owned(), 1, Some(2)),
            (a.as_str().to_owned(), 2, Some(3)),
            (a.as_str().to_owned(), 3, Some(4)),
            (warm.as_str().to_owned(), 1, Some(1)),
        ]
    );

    // A record of an event nobody stored, image and all: the round reads the imaged event,
    // does not find it, walks the stream back instead, finds nothing, and claims nothing.
    let ghost = stream("Account");
    let mut image = images[0].clone();
    image.insert("PK".into(), json!({"S": format!("STREAM#{ghost}")}));
    image.insert("streamId".into(), json!({"S": ghost.as_str()}));
    let mut r = record(&ghost, 1, 99);
    r["dynamodb"]["NewImage"] = json!(image);
    let response = sequencer.handle(batch(vec![r])).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(t.counter("COUNTER#ALL").await, 4);
    assert!(
        t.raw_items(&ghost).await.is_empty(),
        "nothing written for it"
    );
}

/// The items of `stream` as DynamoDB Streams sends them in records' new images: the item
/// as inserted.
async fn images_of(
    t: &TestStore,
    stream: &StreamId,
) -> Vec<std::collections::BTreeMap<String, Value>> {
    t.raw_items(stream)
        .await
        .iter()
        .map(eventstore_tests::capacity::item_json)
        .collect()
}

/// INSERT records carrying `images` (items of `stream`), numbered from `sequence`.
fn records_of(
    stream: &StreamId,
    images: &[std::collections::BTreeMap<String, Value>],
    sequence: u64,
) -> Vec<Value> {
    images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let version = image["version"]["N"].as_str().unwrap().parse().unwrap();
            let mut r = record(stream, version, sequence + i as u64);
            r["dynamodb"]["NewImage"] = json!(image);
            r
        })
        .collect()
}

fn counts(expected: &[(&str, u32)]) -> std::collections::BTreeMap<String, u32> {
    expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect()
}

/// The sequencer writes its claim on the counter and stops before giving the events their
/// positions (its process dies, DynamoDB throttles it for good). The positions are handed
/// out, so they must reach those events and no others: a later round, whoever runs it,
/// rolls the claim forward before it claims anything itself; with no later append, the
/// sweep does. Readers hold at the first claimed position until then, skipping nothing.
#[tokio::test]
async fn a_claim_left_half_way_is_rolled_forward_by_the_next_round_or_the_sweep() {
    use eventstore_core::GlobalFilter;
    use eventstore_tests::Throttle;

    // With `spared` 1 only the claim is written; with 3, the claim and two more writes of
    // its roll (some positions, perhaps a head): a roll cut off part way.
    for (finisher, spared) in [
        ("next round", 1),
        ("sweep", 1),
        ("next round", 3),
        ("sweep", 3),
    ] {
        let t = TestStore::new().await;
        let order = stream("Order");
        append(&t, &order, &["Placed", "Paid", "Shipped"]).await;
        // The claim is the first UpdateItem; every write after the spared ones is refused.
        let stop = Throttle::of(&["UpdateItem"]).after(spared);
        stop.start();
        let dying = TestStore::with_fault(stop.clone()).await;
        let first = Sequencer::new(DynamoEventLog::new(dying.client.clone(), &t.table));
        let hint = [eventstore_dynamodb::StreamHint {
            stream: order.clone(),
            version: 3,
        }];
        assert!(first.sequence(&hint).await.is_err(), "{finisher}");
        assert_eq!(t.counter("COUNTER#ALL").await, 3, "{finisher}");
        let given = t.positions().await.iter().filter(|p| p.2.is_some()).count();
        assert!(given < 3, "{finisher} {spared}: the roll was cut off");
        if spared == 1 {
            assert_eq!(given, 0);
            let page = t
                .store
                .read_global(&GlobalFilter::All, None, 10)
                .await
                .unwrap();
            assert_eq!((page.events.len(), page.next), (0, 1), "{finisher}");
        }

        let cart = stream("Cart");
        append(&t, &cart, &["Added"]).await;
        let healthy = t.sequencer().await;
        match finisher {
            "next round" => {
                let report = healthy
                    .sequence(&[eventstore_dynamodb::StreamHint {
                        stream: cart.clone(),
                        version: 1,
                    }])
                    .await
                    .unwrap();
                assert_eq!(report.events, 1);
            }
            _ => {
                // An idle sweep (no failed batch to replay) still finishes the claim; the
                // cart's append is the stream path's, and stays unsequenced.
                healthy.sweep().await.unwrap();
            }
        }
        let mut positions = t.positions().await;
        positions.sort();
        let expected_cart = match finisher {
            "next round" => Some(4),
            _ => None,
        };
        assert_eq!(
            positions,
            vec![
                (cart.to_string(), 1, expected_cart),
                (order.to_string(), 1, Some(1)),
                (order.to_string(), 2, Some(2)),
                (order.to_string(), 3, Some(3)),
            ],
            "{finisher} {spared}"
        );
        let page = t
            .store
            .read_global(&GlobalFilter::All, None, 10)
            .await
            .unwrap();
        let read: Vec<u64> = page
            .events
            .iter()
            .filter_map(|e| e.global_position)
            .collect();
        match finisher {
            "next round" => assert_eq!(read, [1, 2, 3, 4]),
            _ => assert_eq!(read, [1, 2, 3]),
        }
    }
}

/// More than one claim's worth in one call: 2,500 events of one stream and 10 of another
/// take three claims of at most 1,000 events. Each round after the first rolls the claim
/// before it forward while it reads the heads, which may not show that claim yet; the
/// round must count the claim's runs as sequenced and plan the stream on from there.
#[tokio::test]
async fn rounds_that_roll_the_claim_before_while_they_read_plan_on_from_it() {
    let t = TestStore::new().await;
    let long = stream("Ledger");
    for _ in 0..25 {
        t.store
            .append(
                &long,
                ExpectedVersion::Any,
                &AppendBatch::new(eventstore_tests::events(100)).unwrap(),
            )
            .await
            .unwrap();
    }
    let short = stream("Cart");
    append(&t, &short, &["Added"; 10]).await;
    let sequencer = t.sequencer().await;
    let report = sequencer
        .sequence(&[
            eventstore_dynamodb::StreamHint {
                stream: long.clone(),
                version: 2500,
            },
            eventstore_dynamodb::StreamHint {
                stream: short.clone(),
                version: 10,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        (report.events, report.claims, report.lost_rounds),
        (2510, 3, 0)
    );
    let positions = t.positions().await;
    assert_eq!(positions.len(), 2510);
    assert_dense_and_in_stream_order(&positions);
    // The long stream takes all the room of the first two claims; the third holds its last
    // 500 events and then the short stream's 10.
    let cart: Vec<u64> = positions
        .iter()
        .filter(|p| p.0 == short.as_str())
        .filter_map(|p| p.2)
        .collect();
    assert_eq!(cart, (2501..=2510).collect::<Vec<u64>>());
    assert_eq!(t.counter("COUNTER#ALL").await, 2510);
}

/// A claim on the counter that names an event holding another position (the table was
/// edited, or two writers ignored each other) is never forced through: settling reports
/// it, so the sequencer's batches and sweeps fail and its alarms fire, and the event
/// keeps its position.
#[tokio::test]
async fn a_claim_naming_an_event_with_another_position_is_reported_not_forced() {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let t = TestStore::new().await;
    let s = stream("Order");
    append(&t, &s, &["Placed"]).await;
    t.sequence_all().await;
    let claim = format!(r#"{{"first":2,"runs":[{{"s":"{s}","f":1,"t":1}}]}}"#);
    t.client
        .update_item()
        .table_name(&t.table)
        .key("PK", S("COUNTER#ALL".into()))
        .key("SK", S("COUNTER".into()))
        .update_expression("SET #last = :last, #claim = :claim")
        .expression_attribute_names("#last", "last")
        .expression_attribute_names("#claim", "claim")
        .expression_attribute_values(":last", N("2".into()))
        .expression_attribute_values(":claim", S(claim))
        .send()
        .await
        .unwrap();
    let err = t.sequencer().await.settle().await.unwrap_err();
    assert!(err.to_string().contains("which holds position 1"), "{err}");
    assert_eq!(
        t.positions().await,
        vec![(s.as_str().to_owned(), 1, Some(1))]
    );
}

/// What a sequencer remembers of where streams end is only trusted through its claim: if
/// another sequencer went on since, the claim (written only on the counter value the first
/// one knows) fails, and the round starts again from what the table holds.
#[tokio::test]
async fn a_boundary_remembered_from_before_another_sequencer_went_on_is_not_trusted() {
    let t = TestStore::new().await;
    let a = stream("Account");
    append(&t, &a, &["Opened"]).await;
    let first = images_of(&t, &a).await;
    let (one, two) = (t.sequencer().await, t.sequencer().await);
    // `one` claims version 1 and remembers that the stream ends there.
    one.handle(batch(records_of(&a, &first, 1))).await.unwrap();
    append(&t, &a, &["Deposited"]).await;
    let second = images_of(&t, &a).await.split_off(1);
    // `two` sequences version 2; `one` has not seen it.
    two.handle(batch(records_of(&a, &second, 2))).await.unwrap();
    // The same record reaches `one` again (a retried batch): by what it remembers, version 2
    // follows on and needs a position. Its claim fails on the counter `two` moved, and the
    // round read again finds version 2 sequenced.
    let response = one.handle(batch(records_of(&a, &second, 2))).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        t.positions().await,
        vec![
            (a.as_str().to_owned(), 1, Some(1)),
            (a.as_str().to_owned(), 2, Some(2)),
        ]
    );
    assert_eq!(t.counter("COUNTER#ALL").await, 2);
}

/// Records whose images start inside the sequenced prefix (a batch delivered again after
/// part of it was sequenced): the read of the first imaged event shows its position, and
/// the round walks the stream back to where positions end.
#[tokio::test]
async fn images_that_start_inside_the_sequenced_prefix_are_walked_back_to_its_end() {
    let t = TestStore::new().await;
    let a = stream("Account");
    append(&t, &a, &["Opened", "Deposited"]).await;
    t.sequencer()
        .await
        .sequence(&[eventstore_dynamodb::StreamHint {
            stream: a.clone(),
            version: 1,
        }])
        .await
        .unwrap();
    append(&t, &a, &["Deposited"]).await;
    // A cold sequencer, as after a retried batch landed on a new instance.
    let cold = Sequencer::new(t.store.log().clone());
    let images = images_of(&t, &a).await;
    t.requests.take();
    let response = cold
        .handle(batch(records_of(&a, &images, 1)))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let requests = t.requests.take();
    assert_eq!(
        t.positions().await,
        vec![
            (a.as_str().to_owned(), 1, Some(1)),
            (a.as_str().to_owned(), 2, Some(2)),
            (a.as_str().to_owned(), 3, Some(3)),
        ]
    );
    assert_eq!(
        requests,
        counts(&[
            ("BatchGetItem", 2),
            ("GetItem", 1),
            ("Query", 1),
            ("UpdateItem", 3)
        ]),
        "cold: the counter, and its claim's event checked; then version 1 read and found \
         sequenced, one Query back to it, then the claim and two positions"
    );
}

/// Records delivered again after their events were sequenced (a retried batch): the round
/// finds the hinted event holding a position, which says only that the stream's boundary is
/// at least there. It must not remember that as the boundary: the next batch's records,
/// which follow on, would then be planned again although they hold positions.
#[tokio::test]
async fn a_redelivered_record_of_a_sequenced_event_teaches_no_boundary() {
    let t = TestStore::new().await;
    let a = stream("Account");
    append(
        &t,
        &a,
        &["Opened", "Deposited", "Deposited", "Deposited", "Deposited"],
    )
    .await;
    let images = images_of(&t, &a).await;
    t.sequencer()
        .await
        .sequence(&[eventstore_dynamodb::StreamHint {
            stream: a.clone(),
            version: 5,
        }])
        .await
        .unwrap();
    // A sequencer that sees the five records again, in two batches, then a new event's.
    let late = Sequencer::new(t.store.log().clone());
    for (records, sequence) in [(&images[..2], 1), (&images[2..], 3)] {
        let response = late
            .handle(batch(records_of(&a, records, sequence)))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(t.counter("COUNTER#ALL").await, 5, "nothing claimed again");
    append(&t, &a, &["Withdrawn"]).await;
    let sixth = images_of(&t, &a).await.split_off(5);
    let response = late.handle(batch(records_of(&a, &sixth, 6))).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let positions: Vec<Option<u64>> = t.positions().await.into_iter().map(|p| p.2).collect();
    assert_eq!(positions, (1..=6).map(Some).collect::<Vec<_>>());
}
