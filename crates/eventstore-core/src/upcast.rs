//! Upcasting: old event shapes are brought up to the current schema when they are read; the
//! stored events are never rewritten.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::snapshot::StateEvent;
use crate::{EventData, EventType, RecordedEvent, StoreError, StreamId};

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
        let id = event.event_id.to_string();
        if let Some((data, version)) =
            self.steps_for(&event.event_type, event.schema_version, &event.data, &id)?
        {
            event.data = data;
            event.schema_version = version;
        }
        Ok(event)
    }

    /// [`upcast`](Self::upcast) for an event read to fold state, named in errors by its
    /// stream and version.
    pub fn upcast_state(
        &self,
        stream: &StreamId,
        mut event: StateEvent,
    ) -> Result<StateEvent, StoreError> {
        let who = format!("{stream}@{}", event.version);
        if let Some((data, version)) =
            self.steps_for(&event.event_type, event.schema_version, &event.data, &who)?
        {
            event.data = data;
            event.schema_version = version;
        }
        Ok(event)
    }

    /// The data and schema version after every step that applies; `None` if none does.
    fn steps_for(
        &self,
        event_type: &EventType,
        schema_version: u32,
        data: &EventData,
        who: &str,
    ) -> Result<Option<(EventData, u32)>, StoreError> {
        let mut version = schema_version;
        let mut value: Option<Value> = None;
        while let Some(step) = self.steps.get(&(event_type.as_str().to_owned(), version)) {
            let current = match value.take() {
                Some(v) => v,
                None => serde_json::from_str(data.as_json())
                    .map_err(|e| StoreError::internal(format!("upcasting event {who}"), e))?,
            };
            let next = step(current).map_err(|message| {
                StoreError::corrupt(format!(
                    "upcasting {event_type} {who} from schema {version}: {message}"
                ))
            })?;
            value = Some(next);
            version += 1;
        }
        let Some(value) = value else {
            return Ok(None);
        };
        let text = serde_json::to_string(&value)
            .map_err(|e| StoreError::internal("encoding upcast data", e))?;
        let data = EventData::from_json(text, "data")
            .map_err(|e| StoreError::corrupt(format!("upcast data of {who}: {e}")))?;
        Ok(Some((data, version)))
    }
}
