//! A claim: the positions one sequencer round hands out, and the events they go to, kept on
//! the counter item until the next round replaces it.
//!
//! Writing the claim is the round's one conditional write on the counter; giving each
//! event its position and moving its stream's head (rolling the claim forward) come after,
//! idempotently, and anyone may redo them. That is what lets a claim carry a thousand
//! events where a transaction carried at most about a hundred actions: the counter is
//! written once per claim, not in a transaction with every event.

use serde::{Deserialize, Serialize};

use eventstore_core::StoreError;

/// Most events one claim hands positions to. Rolling a claim forward is one `UpdateItem`
/// per event, sent concurrently, so this bounds a round's write burst and the counter
/// item's size (a run costs its stream id and two numbers).
pub(crate) const MAX_CLAIM_EVENTS: usize = 1000;
/// Most bytes of runs one claim holds (a run: its stream id and [`RUN_OVERHEAD`]). The
/// counter item is rewritten with every claim, at 1 WCU per KB: 32 KB keeps the counter
/// under 400 WCU a second even at ten claims a second of the longest stream ids.
pub(crate) const MAX_CLAIM_BYTES: usize = 32 * 1024;
/// What a run costs in the claim's JSON besides its stream id: names, numbers, braces.
pub(crate) const RUN_OVERHEAD: usize = 64;

/// Consecutive versions `from..=to` of one stream, at consecutive positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Run {
    #[serde(rename = "s")]
    pub stream: String,
    #[serde(rename = "f")]
    pub from: u64,
    #[serde(rename = "t")]
    pub to: u64,
}

/// Positions `first`, `first + 1`, ... handed to the runs' events, run after run, each run
/// in version order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claim {
    pub first: u64,
    pub runs: Vec<Run>,
}

/// One event of a claim: its run (its stream), its version and its position.
pub(crate) type Placement<'a> = (&'a Run, u64, u64);

impl Claim {
    /// How many positions it hands out.
    pub fn events(&self) -> u64 {
        self.runs.iter().map(|r| r.to - r.from + 1).sum()
    }

    /// The last position it hands out: the counter's `last` once it is written.
    pub fn last(&self) -> u64 {
        self.first + self.events() - 1
    }

    /// Every event it names, run after run, each run in version order, with its position.
    pub fn placements(&self) -> impl Iterator<Item = Placement<'_>> {
        self.runs
            .iter()
            .scan(self.first, |next, run| {
                let first = *next;
                *next += run.to - run.from + 1;
                Some((run, first))
            })
            .flat_map(|(run, first)| {
                (run.from..=run.to).map(move |version| (run, version, first + (version - run.from)))
            })
    }

    pub fn encode(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::internal("encoding a claim", e))
    }

    /// A claim read back from the counter, refused unless well formed: at least one event,
    /// every run in order, and `last` within `u64`.
    pub fn decode(text: &str) -> Result<Self, StoreError> {
        let claim: Self = serde_json::from_str(text)
            .map_err(|e| StoreError::internal("decoding the counter's claim", e))?;
        let well_formed = claim.first >= 1
            && !claim.runs.is_empty()
            && claim.runs.iter().all(|r| 1 <= r.from && r.from <= r.to)
            && claim
                .runs
                .iter()
                .try_fold(claim.first, |p, r| p.checked_add(r.to - r.from + 1))
                .is_some();
        if well_formed {
            Ok(claim)
        } else {
            Err(StoreError::corrupt("the counter holds a malformed claim"))
        }
    }
}

#[cfg(test)]
impl Claim {
    /// Every event it names as (stream, version, position), for tests to compare.
    pub(crate) fn placed(&self) -> Vec<(&str, u64, u64)> {
        self.placements()
            .map(|(run, version, position)| (run.stream.as_str(), version, position))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stream: &str, from: u64, to: u64) -> Run {
        Run {
            stream: stream.to_owned(),
            from,
            to,
        }
    }

    #[test]
    fn positions_follow_the_runs_in_order() {
        let claim = Claim {
            first: 41,
            runs: vec![run("A-1", 3, 4), run("B-1", 1, 1), run("A-2", 7, 9)],
        };
        assert_eq!(
            claim.placed(),
            [
                ("A-1", 3, 41),
                ("A-1", 4, 42),
                ("B-1", 1, 43),
                ("A-2", 7, 44),
                ("A-2", 8, 45),
                ("A-2", 9, 46)
            ]
        );
        assert_eq!((claim.events(), claim.last()), (6, 46));
    }

    #[test]
    fn a_claim_reads_back_as_written_and_a_malformed_one_is_refused() {
        let claim = Claim {
            first: 7,
            runs: vec![run("Order-1", 1, 2)],
        };
        let text = claim.encode().unwrap();
        assert_eq!(text, r#"{"first":7,"runs":[{"s":"Order-1","f":1,"t":2}]}"#);
        assert_eq!(Claim::decode(&text).unwrap(), claim);
        for bad in [
            r#"{"first":7,"runs":[]}"#,
            r#"{"first":0,"runs":[{"s":"A","f":1,"t":1}]}"#,
            r#"{"first":7,"runs":[{"s":"A","f":3,"t":2}]}"#,
            r#"{"first":18446744073709551615,"runs":[{"s":"A","f":1,"t":2}]}"#,
            "not json",
        ] {
            assert!(Claim::decode(bad).is_err(), "{bad}");
        }
    }
}
