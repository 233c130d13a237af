//! Upcasting: old event shapes are brought up to the current schema when they are read; the
//! stored events are never rewritten.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::{EventData, RecordedEvent, StoreError};

type Step = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// Per event type, the steps from schema version `n` to `n + 1`.
///
/// An upcaster sees the event's `data` as a `serde_json::Value`, so numbers it touches are
/// i64, u64 or f64 (events that need no upcasting keep their exact stored text).
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Step>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<_> = self.steps.keys().collect();
        steps.sort();
        f.debug_struct("Upcasters").field("steps", &steps).finish()
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers how `event_type` data at schema version `from` becomes version `from + 1`.
    pub fn register(
        mut self,
        event_type: &str,
        from: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .insert((event_type.to_owned(), from), Arc::new(step));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The event at the newest schema version its type has steps for: a copy, with `data`
    /// and `schemaVersion` changed; unchanged if no step applies. A step that fails is an
    /// internal error naming the event, since stored events must always be readable.
    pub fn upcast(&self, mut event: RecordedEvent) -> Result<RecordedEvent, StoreError> {
        let mut version = event.schema_version;
        let mut data: Option<Value> = None;
        while let Some(step) = self
            .steps
            .get(&(event.event_type.as_str().to_owned(), version))
        {
            let value = match data.take() {
                Some(v) => v,
                None => serde_json::from_str(event.data.as_json()).map_err(|e| {
                    StoreError::internal(format!("upcasting event {}", event.event_id), e)
                })?,
            };
            let next = step(value).map_err(|message| {
                StoreError::corrupt(format!(
                    "upcasting {} {} from schema {version}: {message}",
                    event.event_type, event.event_id
                ))
            })?;
            data = Some(next);
            version += 1;
        }
        if let Some(value) = data {
            let text = serde_json::to_string(&value)
                .map_err(|e| StoreError::internal("encoding upcast data", e))?;
            event.data = EventData::from_json(text, "data").map_err(|e| {
                StoreError::corrupt(format!("upcast data of {}: {e}", event.event_id))
            })?;
            event.schema_version = version;
        }
        Ok(event)
    }
}
