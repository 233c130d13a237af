//! The bank example's read model: `account-balances`, one row per account.

use eventstore_core::{EventType, Projection, RecordedEvent, RowId, Rows};
use serde_json::{json, Value};

/// Per account (stream `Account-<id>`, row key `<id>`): `balance`, `transactionCount`,
/// `lastActivity` and `isOpen`, from `AccountOpened {initialDeposit}`,
/// `MoneyDeposited {amount}`, `MoneyWithdrawn {amount}` and `AccountClosed`.
#[derive(Debug, Default, Clone, Copy)]
pub struct AccountBalances;

const ACCOUNT_EVENTS: [&str; 4] = [
    "AccountOpened",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "AccountClosed",
];

fn account_id(event: &RecordedEvent) -> Option<&str> {
    event.stream_id.as_str().strip_prefix("Account-")
}

fn amount(event: &RecordedEvent, field: &str) -> Result<i64, String> {
    let data: Value = serde_json::from_str(event.data.as_json()).map_err(|e| e.to_string())?;
    data.get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("{} without an integer {field}", event.event_type))
}

impl Projection for AccountBalances {
    fn name(&self) -> &str {
        "account-balances"
    }

    fn handles(&self, event_type: &EventType) -> bool {
        ACCOUNT_EVENTS.contains(&event_type.as_str())
    }

    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        account_id(event).map(RowId::single).into_iter().collect()
    }

    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        // Only streams of category Account are accounts.
        let Some(id) = account_id(event) else {
            return Ok(());
        };
        let row = RowId::single(id);
        let at = event.created_at.to_string();
        let current = rows.get(&row).cloned();
        let field = |name: &str| current.as_ref().and_then(|v| v.get(name)).cloned();
        let balance = field("balance").and_then(|v| v.as_i64()).unwrap_or(0);
        let count = field("transactionCount")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let next = match event.event_type.as_str() {
            "AccountOpened" => {
                if current.is_some() {
                    return Err(format!("account {id} opened twice"));
                }
                json!({"balance": amount(event, "initialDeposit")?, "transactionCount": 1,
                       "lastActivity": at, "isOpen": true})
            }
            _ if current.is_none() => {
                return Err(format!(
                    "{} on account {id}, which was never opened",
                    event.event_type
                ))
            }
            // Checked: an overflow would panic in a debug build (taking the local projector
            // down) and wrap silently in release; refused, the event is parked instead.
            "MoneyDeposited" | "MoneyWithdrawn" => {
                let amount = amount(event, "amount")?;
                let next = if event.event_type.as_str() == "MoneyDeposited" {
                    balance.checked_add(amount)
                } else {
                    balance.checked_sub(amount)
                };
                let overflow = || {
                    format!(
                        "{} of {amount} on account {id} would overflow its balance of {balance}",
                        event.event_type
                    )
                };
                let next = next.ok_or_else(overflow)?;
                let count = count.checked_add(1).ok_or_else(|| {
                    format!("account {id} has had more transactions than can be counted")
                })?;
                json!({"balance": next, "transactionCount": count, "lastActivity": at,
                       "isOpen": true})
            }
            "AccountClosed" => json!({"balance": balance, "transactionCount": count,
                "lastActivity": at, "isOpen": false}),
            _ => return Ok(()),
        };
        rows.put(row, next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventstore_core::{EventData, Metadata, StreamId, Timestamp};

    fn recorded(stream: &str, event_type: &str, data: &str) -> RecordedEvent {
        RecordedEvent {
            event_id: uuid::Uuid::nil(),
            stream_id: StreamId::parse(stream, "streamId").unwrap(),
            version: 1,
            event_type: EventType::parse(event_type, "eventType").unwrap(),
            schema_version: 1,
            data: EventData::from_json(data.to_owned(), "data").unwrap(),
            metadata: Metadata::empty(),
            created_at: Timestamp::now(),
            global_position: Some(1),
        }
    }

    /// The account row `a` with `balance`, as loaded before an event.
    fn account_with(balance: i64) -> Rows {
        Rows::loaded([(
            RowId::single("a"),
            Some(json!({"balance": balance, "transactionCount": 1,
                        "lastActivity": "2026-01-01T00:00:00Z", "isOpen": true})),
        )])
    }

    #[test]
    fn a_deposit_that_would_overflow_the_balance_is_refused_and_changes_nothing() {
        let mut rows = account_with(i64::MAX - 1);
        let before = rows.clone();
        let result = AccountBalances.apply(
            &recorded("Account-a", "MoneyDeposited", r#"{"amount":2}"#),
            &mut rows,
        );
        assert_eq!(
            result,
            Err(format!(
                "MoneyDeposited of 2 on account a would overflow its balance of {}",
                i64::MAX - 1
            ))
        );
        assert_eq!(rows, before);
    }

    #[test]
    fn a_withdrawal_that_would_overflow_the_balance_is_refused_and_changes_nothing() {
        let mut rows = account_with(i64::MIN + 1);
        let before = rows.clone();
        let result = AccountBalances.apply(
            &recorded("Account-a", "MoneyWithdrawn", r#"{"amount":2}"#),
            &mut rows,
        );
        assert_eq!(
            result,
            Err(format!(
                "MoneyWithdrawn of 2 on account a would overflow its balance of {}",
                i64::MIN + 1
            ))
        );
        assert_eq!(rows, before);
    }

    #[test]
    fn a_withdrawal_of_the_most_negative_amount_is_refused() {
        // `balance - i64::MIN` overflows for every balance >= 0.
        let mut rows = account_with(0);
        let result = AccountBalances.apply(
            &recorded(
                "Account-a",
                "MoneyWithdrawn",
                &format!(r#"{{"amount":{}}}"#, i64::MIN),
            ),
            &mut rows,
        );
        assert_eq!(
            result,
            Err(format!(
                "MoneyWithdrawn of {} on account a would overflow its balance of 0",
                i64::MIN
            ))
        );
    }

    #[test]
    fn amounts_up_to_the_limits_are_applied_exactly() {
        let mut rows = account_with(i64::MAX - 2);
        AccountBalances
            .apply(
                &recorded("Account-a", "MoneyDeposited", r#"{"amount":2}"#),
                &mut rows,
            )
            .unwrap();
        let row = rows.get(&RowId::single("a")).unwrap();
        assert_eq!(
            (row["balance"].clone(), row["transactionCount"].clone()),
            (json!(i64::MAX), json!(2))
        );
        let mut rows = account_with(i64::MIN + 2);
        AccountBalances
            .apply(
                &recorded("Account-a", "MoneyWithdrawn", r#"{"amount":2}"#),
                &mut rows,
            )
            .unwrap();
        assert_eq!(
            rows.get(&RowId::single("a")).unwrap()["balance"],
            json!(i64::MIN)
        );
    }
}
