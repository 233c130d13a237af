//! Given/when/then tests of aggregates, with no store:
//!
//! ```ignore
//! given::<BankAccount>([AccountOpened { initial_deposit: 100 }])
//!     .when(Withdraw { amount: 150 })
//!     .then_error(AccountError::InsufficientFunds { balance: 100, requested: 150 });
//! ```

use std::fmt::Debug;

use crate::Aggregate;

/// An aggregate rebuilt from past events.
#[derive(Debug)]
pub struct Given<A> {
    state: A,
}

/// The outcome of a command on a [`Given`] aggregate.
#[derive(Debug)]
pub struct When<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

/// Starts a test: the aggregate after `events`.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut state = A::default();
    for event in events {
        state.apply(&event);
    }
    Given { state }
}

impl<A: Aggregate> Given<A> {
    pub fn when(self, command: A::Command) -> When<A> {
        When {
            result: self.state.decide(&command),
        }
    }

    pub fn state(&self) -> &A {
        &self.state
    }
}

impl<A: Aggregate> When<A>
where
    A::Event: PartialEq + Debug,
    A::Error: PartialEq + Debug,
{
    /// Asserts the command decided exactly these events.
    pub fn then_expect(self, events: impl IntoIterator<Item = A::Event>) {
        let want: Vec<A::Event> = events.into_iter().collect();
        match self.result {
            Ok(got) => assert_eq!(got, want, "decided other events than expected"),
            Err(e) => panic!("expected events {want:?}, the command was rejected: {e:?}"),
        }
    }

    /// Asserts the command was rejected with exactly this error.
    pub fn then_error(self, error: A::Error) {
        match self.result {
            Ok(got) => panic!("expected rejection {error:?}, the command decided {got:?}"),
            Err(e) => assert_eq!(e, error, "rejected with another error than expected"),
        }
    }

    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}
