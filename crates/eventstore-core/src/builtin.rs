//! The built-in projections: `account-balances` (the seeds' bank-account read model) and
//! `category-streams` (the streams of each category).

use serde_json::{json, Value};

use crate::projection::{Projection, RowId, Rows};
use crate::{EventType, RecordedEvent};

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
            "MoneyDeposited" => json!({"balance": balance + amount(event, "amount")?,
                "transactionCount": count + 1, "lastActivity": at, "isOpen": true}),
            "MoneyWithdrawn" => json!({"balance": balance - amount(event, "amount")?,
                "transactionCount": count + 1, "lastActivity": at, "isOpen": true}),
            "AccountClosed" => json!({"balance": balance, "transactionCount": count,
                "lastActivity": at, "isOpen": false}),
            _ => return Ok(()),
        };
        rows.put(row, next);
        Ok(())
    }
}

/// Per category (row key: the category), one row per stream (item: the stream id) with its
/// current `version` and `lastEventAt`. A category's streams are read a page at a time.
#[derive(Debug, Default, Clone, Copy)]
pub struct CategoryStreams;

impl Projection for CategoryStreams {
    fn name(&self) -> &str {
        "category-streams"
    }

    fn handles(&self, _: &EventType) -> bool {
        true
    }

    fn rows(&self, event: &RecordedEvent) -> Vec<RowId> {
        vec![RowId::item(
            event.stream_id.category().as_str(),
            event.stream_id.as_str(),
        )]
    }

    fn apply(&self, event: &RecordedEvent, rows: &mut Rows) -> Result<(), String> {
        let row = RowId::item(
            event.stream_id.category().as_str(),
            event.stream_id.as_str(),
        );
        rows.put(
            row,
            json!({"streamId": event.stream_id.as_str(), "version": event.version,
                   "lastEventAt": event.created_at.to_string()}),
        );
        Ok(())
    }
}

/// Every built-in projection.
pub fn all() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(AccountBalances),
        std::sync::Arc::new(CategoryStreams),
    ]
}
