//! Table-driven: how a round packs into a claim, and which positions the claim hands out.

use super::*;
use crate::sequencer::claim::RUN_OVERHEAD;

/// Stream `name` at `head`, with `events` unsequenced events after it.
fn stream(name: &str, head: u64, events: u64) -> Found {
    Found {
        stream: name.to_owned(),
        head,
        events: (head + 1..=head + events)
            .map(|version| Unsequenced {
                version,
                created_at: String::new(),
            })
            .collect(),
    }
}

#[test]
fn packing_fills_a_claim_in_stream_order() {
    #[allow(clippy::type_complexity)]
    let events = |n| Budget {
        events: n,
        bytes: usize::MAX,
    };
    let cases: Vec<(&str, Vec<Found>, Budget, Vec<usize>)> = vec![
        ("one event", vec![stream("A", 0, 1)], events(1000), vec![1]),
        (
            "a long stream stops at the claim's size",
            vec![stream("A", 0, 1500)],
            events(1000),
            vec![1000],
        ),
        (
            "the stream that overflows is taken in part",
            vec![stream("A", 0, 600), stream("B", 3, 600)],
            events(1000),
            vec![600, 400],
        ),
        (
            "streams after a full claim take nothing",
            vec![stream("A", 0, 1000), stream("B", 0, 5)],
            events(1000),
            vec![1000, 0],
        ),
        (
            "streams with nothing new take nothing and end nothing",
            vec![stream("A", 4, 0), stream("B", 0, 2)],
            events(1000),
            vec![0, 2],
        ),
        (
            "a hundred one-event streams in one claim",
            (0..100).map(|i| stream(&format!("S-{i}"), 0, 1)).collect(),
            events(1000),
            vec![1; 100],
        ),
        (
            // Each run costs its id (1 byte) and the overhead: two fit, the third ends it.
            "the claim's bytes stop at the stream that does not fit",
            vec![stream("A", 0, 5), stream("B", 0, 5), stream("C", 0, 5)],
            Budget {
                events: 1000,
                bytes: 2 * (1 + RUN_OVERHEAD) + RUN_OVERHEAD,
            },
            vec![5, 5, 0],
        ),
        (
            "the real budget",
            vec![stream("A", 0, 1)],
            Budget::CLAIM,
            vec![1],
        ),
    ];
    for (name, found, budget, want) in cases {
        assert_eq!(pack(&found, budget), want, "{name}");
    }
}

#[test]
fn placing_hands_out_the_positions_after_the_counter() {
    let found = vec![
        stream("A-1", 2, 3),
        stream("B-1", 0, 0),
        stream("C-1", 0, 2),
    ];
    let claim = place(&found, &[2, 0, 2], 40).unwrap();
    assert_eq!(
        claim.placed(),
        [
            ("A-1", 3, 41),
            ("A-1", 4, 42),
            ("C-1", 1, 43),
            ("C-1", 2, 44)
        ]
    );
    assert_eq!(claim.last(), 44);
    assert_eq!(place(&found, &[0, 0, 0], 40), None);
}
