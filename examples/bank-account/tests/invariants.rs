//! The account's invariants, given/when/then, with no store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bank_account::{AccountCommand as C, AccountError, AccountEvent as E, BankAccount};
use eventstore_core::aggregate::{decode_event, encode_event};
use eventstore_core::testkit::given;

fn opened(deposit: i64) -> E {
    E::AccountOpened {
        owner: "ada".into(),
        initial_deposit: deposit,
    }
}

fn deposited(amount: i64) -> E {
    E::MoneyDeposited {
        amount,
        reference: None,
    }
}

fn open(deposit: i64) -> C {
    C::Open {
        owner: "ada".into(),
        initial_deposit: deposit,
    }
}

#[test]
fn an_account_opens_once() {
    given::<BankAccount>([])
        .when(open(100))
        .then_expect([opened(100)]);
    given::<BankAccount>([])
        .when(open(0))
        .then_expect([opened(0)]);
    given::<BankAccount>([opened(100)])
        .when(open(5))
        .then_error(AccountError::AlreadyOpen);
    given::<BankAccount>([opened(0), E::AccountClosed])
        .when(open(5))
        .then_error(AccountError::AlreadyOpen);
    given::<BankAccount>([])
        .when(open(-1))
        .then_error(AccountError::NegativeInitialDeposit(-1));
}

#[test]
fn only_positive_amounts_move() {
    for amount in [0, -5] {
        given::<BankAccount>([opened(100)])
            .when(C::Deposit {
                amount,
                reference: None,
            })
            .then_error(AccountError::NotPositive(amount));
        given::<BankAccount>([opened(100)])
            .when(C::Withdraw { amount })
            .then_error(AccountError::NotPositive(amount));
    }
    given::<BankAccount>([opened(100)])
        .when(C::Deposit {
            amount: 5,
            reference: Some("salary".into()),
        })
        .then_expect([E::MoneyDeposited {
            amount: 5,
            reference: Some("salary".into()),
        }]);
}

#[test]
fn no_overdraft() {
    given::<BankAccount>([opened(100), deposited(50)])
        .when(C::Withdraw { amount: 150 })
        .then_expect([E::MoneyWithdrawn { amount: 150 }]);
    given::<BankAccount>([opened(100), E::MoneyWithdrawn { amount: 30 }])
        .when(C::Withdraw { amount: 71 })
        .then_error(AccountError::InsufficientFunds {
            balance: 70,
            requested: 71,
        });
}

#[test]
fn nothing_happens_to_an_account_that_is_closed_or_not_open() {
    let closed = [opened(0), E::AccountClosed];
    for command in [
        C::Deposit {
            amount: 1,
            reference: None,
        },
        C::Withdraw { amount: 1 },
        C::Close,
    ] {
        given::<BankAccount>(closed.clone())
            .when(command.clone())
            .then_error(AccountError::Closed);
        given::<BankAccount>([])
            .when(command)
            .then_error(AccountError::NotOpen);
    }
}

#[test]
fn only_an_empty_account_closes() {
    given::<BankAccount>([opened(10)])
        .when(C::Close)
        .then_error(AccountError::NonZeroBalance(10));
    given::<BankAccount>([opened(10), E::MoneyWithdrawn { amount: 10 }])
        .when(C::Close)
        .then_expect([E::AccountClosed]);
}

#[test]
fn state_follows_the_events() {
    let given =
        given::<BankAccount>([opened(100), deposited(50), E::MoneyWithdrawn { amount: 30 }]);
    assert_eq!(
        given.state(),
        &BankAccount {
            open: true,
            closed: false,
            balance: 120,
            transactions: 3
        }
    );
}

#[test]
fn events_are_stored_as_type_and_camel_case_data() {
    let (t, data) = encode_event(&opened(100)).unwrap();
    assert_eq!(
        (t.as_str(), data.as_json()),
        ("AccountOpened", r#"{"owner":"ada","initialDeposit":100}"#)
    );
    let (t, data) = encode_event(&E::AccountClosed).unwrap();
    assert_eq!((t.as_str(), data.as_json()), ("AccountClosed", "{}"));
    assert_eq!(decode_event::<E>(&t, &data).unwrap(), E::AccountClosed);
}

#[test]
fn the_upcasters_bring_v1_and_v2_deposits_to_v3() {
    use eventstore_core::{EventData, EventType, RecordedEvent, StreamId, Timestamp};
    let stored = |schema: u32, data: &str| RecordedEvent {
        event_id: uuid_v7(),
        stream_id: StreamId::parse("Account-1", "s").unwrap(),
        version: 1,
        event_type: EventType::parse("MoneyDeposited", "t").unwrap(),
        schema_version: schema,
        data: EventData::from_json(data.into(), "data").unwrap(),
        metadata: eventstore_core::Metadata::empty(),
        created_at: Timestamp::now(),
        global_position: None,
    };
    let up = bank_account::upcasters();
    for (schema, data) in [
        (1, r#"{"value":7}"#),
        (2, r#"{"amount":7}"#),
        (3, r#"{"amount":7,"reference":null}"#),
    ] {
        let event = up.upcast(stored(schema, data)).unwrap();
        assert_eq!(
            (event.schema_version, event.data.as_json()),
            (3, r#"{"amount":7,"reference":null}"#)
        );
    }
    let broken = up.upcast(stored(1, r#"{"nothing":1}"#)).unwrap_err();
    assert!(
        broken
            .to_string()
            .contains("v1 MoneyDeposited without value"),
        "{broken}"
    );
}

fn uuid_v7() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
