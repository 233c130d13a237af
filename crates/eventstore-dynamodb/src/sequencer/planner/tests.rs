//! Table-driven: how rounds pack into a transaction, and how events are numbered.

use super::*;

/// A stream of `category` at `head`, with one event per type in `types` of `bytes` each.
fn stream(category: &str, head: u64, types: &[&str], bytes: usize) -> Found {
    Found {
        category: category.to_owned(),
        head,
        events: types
            .iter()
            .zip(head + 1..)
            .map(|(t, version)| Unsequenced {
                version,
                event_type: (*t).to_owned(),
                bytes,
                created_at: String::new(),
            })
            .collect(),
    }
}

fn budget(actions: usize, bytes: usize) -> Budget {
    Budget { actions, bytes }
}

#[test]
fn packing_fits_actions_and_bytes_in_stream_order() {
    let a30 = vec!["A"; 30];
    let a200 = vec!["A"; 200];
    let mixed: Vec<&str> = vec!["A", "B", "C", "D"];
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<Found>, Budget, Vec<usize>)> = vec![
        (
            // 1 global + 1 head + 1 category + 1 type + 1 update = 5 actions.
            "one event",
            vec![stream("C", 0, &["A"], 10)],
            Budget::DYNAMODB,
            vec![1],
        ),
        (
            // 1 global + head + category + type = 4; 96 updates fit.
            "one long stream stops at 100 actions",
            vec![stream("C", 0, &a200, 10)],
            Budget::DYNAMODB,
            vec![96],
        ),
        (
            // Each new type costs its counter: 1 + 2 + 4 * 2 = 11 actions.
            "every new type costs a counter",
            vec![stream("C", 0, &mixed, 10)],
            budget(11, usize::MAX),
            vec![4],
        ),
        (
            "one action short leaves the last new type out",
            vec![stream("C", 0, &mixed, 10)],
            budget(10, usize::MAX),
            vec![3],
        ),
        (
            // 1 + (2 + 1 + 30) = 34; the second stream shares category and type: 1 + 30.
            "streams of one category share its counter",
            vec![stream("C", 0, &a30, 10), stream("C", 5, &a30, 10)],
            Budget::DYNAMODB,
            vec![30, 30],
        ),
        (
            // 34 + (2 + 30) = 66; the third stream's head and counter leave room for 32.
            "a new category costs its counter",
            vec![
                stream("C", 0, &a30, 10),
                stream("D", 0, &a30, 10),
                stream("E", 0, &a200, 10),
            ],
            Budget::DYNAMODB,
            vec![30, 30, 32],
        ),
        (
            "bytes stop a stream part way",
            vec![stream("C", 0, &a30, 100)],
            budget(100, 1050),
            vec![10],
        ),
        (
            "a stream that cannot take one event ends the packing",
            vec![
                stream("C", 0, &["A"], 1000),
                stream("D", 0, &["A"], 1000),
                stream("E", 0, &["A"], 10),
            ],
            budget(100, 1500),
            vec![1, 0, 0],
        ),
        (
            "a stream without events is skipped, not an end",
            vec![stream("C", 3, &[], 10), stream("D", 0, &["A"], 10)],
            Budget::DYNAMODB,
            vec![0, 1],
        ),
        (
            "an event over the byte budget is never taken",
            vec![stream("C", 0, &["A"], 4 * 1024 * 1024)],
            Budget::DYNAMODB,
            vec![0],
        ),
    ];
    for (name, found, budget, expected) in cases {
        assert_eq!(pack(&found, budget), expected, "{name}");
    }
}

#[test]
fn numbering_gives_dense_positions_and_sub_sequences() {
    let read = |pairs: &[(Counter, u64)]| pairs.iter().cloned().collect::<BTreeMap<_, _>>();
    let t = |s: &str| Counter::Type(s.to_owned());
    let c = |s: &str| Counter::Category(s.to_owned());
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        Vec<Found>,
        Vec<usize>,
        u64,
        BTreeMap<Counter, u64>,
        Plan,
    )> = vec![
        (
            "the first events of a store",
            vec![stream("C", 0, &["A", "B"], 1)],
            vec![2],
            0,
            read(&[]),
            Plan {
                placed: vec![
                    Placed {
                        stream: 0,
                        version: 1,
                        position: 1,
                        type_sequence: 1,
                        category_sequence: 1,
                    },
                    Placed {
                        stream: 0,
                        version: 2,
                        position: 2,
                        type_sequence: 1,
                        category_sequence: 2,
                    },
                ],
                heads: vec![(0, Move { old: 0, new: 2 })],
                global: Move { old: 0, new: 2 },
                counters: [
                    (t("A"), Move { old: 0, new: 1 }),
                    (t("B"), Move { old: 0, new: 1 }),
                    (c("C"), Move { old: 0, new: 2 }),
                ]
                .into_iter()
                .collect(),
            },
        ),
        (
            "counters go on from what was read; a stream goes on from its head",
            vec![stream("C", 7, &["A"], 1), stream("D", 0, &["A", "A"], 1)],
            vec![1, 2],
            40,
            read(&[(t("A"), 10), (c("C"), 3)]),
            Plan {
                placed: vec![
                    Placed {
                        stream: 0,
                        version: 8,
                        position: 41,
                        type_sequence: 11,
                        category_sequence: 4,
                    },
                    Placed {
                        stream: 1,
                        version: 1,
                        position: 42,
                        type_sequence: 12,
                        category_sequence: 1,
                    },
                    Placed {
                        stream: 1,
                        version: 2,
                        position: 43,
                        type_sequence: 13,
                        category_sequence: 2,
                    },
                ],
                heads: vec![(0, Move { old: 7, new: 8 }), (1, Move { old: 0, new: 2 })],
                global: Move { old: 40, new: 43 },
                counters: [
                    (t("A"), Move { old: 10, new: 13 }),
                    (c("C"), Move { old: 3, new: 4 }),
                    (c("D"), Move { old: 0, new: 2 }),
                ]
                .into_iter()
                .collect(),
            },
        ),
        (
            "only the taken events are numbered; streams taking none are left alone",
            vec![
                stream("C", 0, &["A", "A", "A"], 1),
                stream("C", 2, &["A"], 1),
            ],
            vec![2, 0],
            5,
            read(&[]),
            Plan {
                placed: vec![
                    Placed {
                        stream: 0,
                        version: 1,
                        position: 6,
                        type_sequence: 1,
                        category_sequence: 1,
                    },
                    Placed {
                        stream: 0,
                        version: 2,
                        position: 7,
                        type_sequence: 2,
                        category_sequence: 2,
                    },
                ],
                heads: vec![(0, Move { old: 0, new: 2 })],
                global: Move { old: 5, new: 7 },
                counters: [
                    (t("A"), Move { old: 0, new: 2 }),
                    (c("C"), Move { old: 0, new: 2 }),
                ]
                .into_iter()
                .collect(),
            },
        ),
    ];
    for (name, found, takes, global, read, expected) in cases {
        assert_eq!(place(&found, &takes, global, &read), expected, "{name}");
        assert_eq!(
            counters(&found, &takes),
            expected.counters.keys().cloned().collect(),
            "{name}: the counters read are the counters moved"
        );
    }
}
