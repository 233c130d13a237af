//! The seeds' bank account: an aggregate with invariants, its events, and the upcasters that
//! read the older shapes of its deposits.
#![forbid(unsafe_code)]

use eventstore_core::{Aggregate, DomainEvent, Registry, Upcasters};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What happened to an account. Stored as type = variant name, data = its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum AccountEvent {
    AccountOpened {
        owner: String,
        initial_deposit: i64,
    },
    /// Schema 3. Version 1 stored `{"value": n}`, version 2 `{"amount": n}`; the
    /// [`upcasters`] bring both up to this shape on read.
    MoneyDeposited {
        amount: i64,
        reference: Option<String>,
    },
    MoneyWithdrawn {
        amount: i64,
    },
    AccountClosed,
}

impl DomainEvent for AccountEvent {
    fn schema_version(&self) -> u32 {
        match self {
            Self::MoneyDeposited { .. } => 3,
            _ => 1,
        }
    }
}

mod balances;

pub use balances::AccountBalances;

/// What the bank app registers with the store: its read model and its upcasters. The
/// deployed functions are built from this (with the built-in `category-streams`).
pub fn registry() -> Registry {
    Registry::new()
        .projection(AccountBalances)
        .upcasters(upcasters())
}

/// The upcasting chain of `MoneyDeposited`: v1 → v2 renames `value` to `amount`, v2 → v3
/// adds `reference: null`.
pub fn upcasters() -> Upcasters {
    Upcasters::new()
        .register("MoneyDeposited", 1, |mut data: Value| {
            let value = data
                .as_object_mut()
                .and_then(|o| o.remove("value"))
                .ok_or("v1 MoneyDeposited without value")?;
            Ok(json!({ "amount": value }))
        })
        .register("MoneyDeposited", 2, |mut data: Value| {
            let object = data
                .as_object_mut()
                .ok_or("v2 MoneyDeposited is not an object")?;
            object.entry("reference").or_insert(Value::Null);
            Ok(data)
        })
}

/// What an account holder asks for. Amounts are in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Open {
        owner: String,
        initial_deposit: i64,
    },
    Deposit {
        amount: i64,
        reference: Option<String>,
    },
    Withdraw {
        amount: i64,
    },
    Close,
}

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account has not been opened")]
    NotOpen,
    #[error("the account is closed")]
    Closed,
    #[error("amounts must be positive, got {0}")]
    NotPositive(i64),
    #[error("the initial deposit cannot be negative, got {0}")]
    NegativeInitialDeposit(i64),
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: i64, requested: i64 },
    #[error("cannot close an account holding {0}")]
    NonZeroBalance(i64),
}

/// The account's state, as snapshots store it (state schema 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankAccount {
    pub open: bool,
    pub closed: bool,
    pub balance: i64,
    pub transactions: u64,
}

impl BankAccount {
    fn usable(&self) -> Result<(), AccountError> {
        match (self.open, self.closed) {
            (_, true) => Err(AccountError::Closed),
            (false, _) => Err(AccountError::NotOpen),
            _ => Ok(()),
        }
    }
}

fn positive(amount: i64) -> Result<i64, AccountError> {
    if amount > 0 {
        Ok(amount)
    } else {
        Err(AccountError::NotPositive(amount))
    }
}

impl Aggregate for BankAccount {
    const CATEGORY: &'static str = "Account";
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand as C;
        use AccountEvent as E;
        match command {
            C::Open {
                owner,
                initial_deposit,
            } => {
                if self.open || self.closed {
                    return Err(AccountError::AlreadyOpen);
                }
                if *initial_deposit < 0 {
                    return Err(AccountError::NegativeInitialDeposit(*initial_deposit));
                }
                Ok(vec![E::AccountOpened {
                    owner: owner.clone(),
                    initial_deposit: *initial_deposit,
                }])
            }
            C::Deposit { amount, reference } => {
                self.usable()?;
                Ok(vec![E::MoneyDeposited {
                    amount: positive(*amount)?,
                    reference: reference.clone(),
                }])
            }
            C::Withdraw { amount } => {
                self.usable()?;
                let amount = positive(*amount)?;
                if amount > self.balance {
                    return Err(AccountError::InsufficientFunds {
                        balance: self.balance,
                        requested: amount,
                    });
                }
                Ok(vec![E::MoneyWithdrawn { amount }])
            }
            C::Close => {
                self.usable()?;
                if self.balance != 0 {
                    return Err(AccountError::NonZeroBalance(self.balance));
                }
                Ok(vec![E::AccountClosed])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountOpened {
                initial_deposit, ..
            } => {
                self.open = true;
                self.balance = *initial_deposit;
                self.transactions = 1;
            }
            AccountEvent::MoneyDeposited { amount, .. } => {
                self.balance += amount;
                self.transactions += 1;
            }
            AccountEvent::MoneyWithdrawn { amount } => {
                self.balance -= amount;
                self.transactions += 1;
            }
            AccountEvent::AccountClosed => {
                self.closed = true;
            }
        }
    }
}
