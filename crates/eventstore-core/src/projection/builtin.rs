//! The built-in projection: `category-streams` (the streams of each category). An app's
//! own projections (the bank example's `account-balances`, say) live with the app.

use serde_json::json;

use super::{Projection, RowId, Rows};
use crate::{EventType, RecordedEvent};

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
    vec![std::sync::Arc::new(CategoryStreams)]
}
