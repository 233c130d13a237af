//! [`CommandContext`], the ids a command passes on to its events' metadata, and the event
//! ids derived from its idempotency key, by which a retried command is recognised.

use serde_json::Value;
use uuid::Uuid;

use crate::{Metadata, StoreError, StreamId};

/// Ids that flow from a command into the metadata of the events it produces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandContext {
    /// The request or conversation this command belongs to (`correlationId`).
    pub correlation_id: Option<String>,
    /// The message that caused this command (`causationId`).
    pub causation_id: Option<String>,
    /// Names this command across retries (`idempotencyKey`): the client's request id, say.
    /// The command's event ids are derived from it, so a command retried after a timeout or
    /// a 503, whose first attempt did land, is recognised and not applied twice. Without
    /// one, every attempt is a new command with new event ids.
    pub idempotency_key: Option<String>,
}

/// How many of a stream's newest events a keyed command looks through for its own events
/// from an earlier attempt: a retry is recognised while they are among the last this many.
pub const IDEMPOTENCY_WINDOW: u64 = 100;

/// The UUIDv5 namespace of event ids derived from idempotency keys (fixed for good: changing
/// it would stop retries of commands issued before the change from being recognised).
const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x5c1f_9a3e_0d47_4b8e_9f26_7e1a_c3d0_b845);

impl CommandContext {
    /// The id of the `index`-th event this command appends to `stream`: a UUIDv5 of the
    /// stream, the idempotency key and the index when there is a key, else a new UUIDv7.
    pub(super) fn event_id(&self, stream: &StreamId, index: usize) -> Uuid {
        match &self.idempotency_key {
            // The stream's length first, so that no (stream, key) pair reads as another.
            Some(key) => Uuid::new_v5(
                &COMMAND_NAMESPACE,
                format!("{}:{stream}{key}#{index}", stream.as_str().len()).as_bytes(),
            ),
            None => Uuid::now_v7(),
        }
    }

    pub(super) fn metadata(&self) -> Result<Metadata, StoreError> {
        let mut map = serde_json::Map::new();
        if let Some(c) = &self.correlation_id {
            map.insert("correlationId".into(), Value::String(c.clone()));
        }
        if let Some(c) = &self.causation_id {
            map.insert("causationId".into(), Value::String(c.clone()));
        }
        if let Some(k) = &self.idempotency_key {
            map.insert("idempotencyKey".into(), Value::String(k.clone()));
        }
        let text = serde_json::to_string(&map)
            .map_err(|e| StoreError::internal("encoding metadata", e))?;
        Ok(Metadata::from_json(text, "metadata")?)
    }
}
