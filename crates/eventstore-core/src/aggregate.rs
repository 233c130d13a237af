//! Event-sourced aggregates: pure, synchronous domain logic ([`Aggregate`]), and the
//! [`Repository`] that loads them from their stream (from a snapshot when there is one) and
//! saves what they decide with optimistic concurrency.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::limits::MAX_READ_LIMIT;
use crate::snapshot::{Snapshot, SnapshotStore, MAX_SNAPSHOT_STATE_BYTES};
use crate::store::{Direction, StreamRead};
use crate::upcast::Upcasters;
use crate::{
    AppendBatch, AppendOutcome, EventData, EventLog, EventStore, EventType, ExpectedVersion,
    Metadata, NewEvent, RecordedEvent, StoreError, StreamId, Timestamp,
};

/// A domain event: an enum whose variants are named in the past tense. The variant name is
/// the stored `eventType` and its fields are `data` (a unit variant stores `{}`), so
/// `MoneyDeposited { amount: 5 }` is stored as type `MoneyDeposited`, data `{"amount":5}`.
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync {
    /// The schema version this code writes (and upcasters bring older events up to).
    fn schema_version(&self) -> u32 {
        1
    }
}

/// Splits an event into its stored type and data. The data is the variant's fields as serde
/// writes them, in their declared order.
pub fn encode_event<E: DomainEvent>(event: &E) -> Result<(EventType, EventData), StoreError> {
    let text = serde_json::to_string(event)
        .map_err(|e| StoreError::internal("encoding a domain event", e))?;
    let not_a_variant = || {
        StoreError::corrupt("a domain event must serialise as an externally tagged enum variant")
    };
    // A unit variant is its name as a JSON string; any other variant is {"Name": fields}.
    let (name, data) = if let Ok(name) = serde_json::from_str::<String>(&text) {
        (name, "{}".to_owned())
    } else {
        let tagged: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_str(&text).map_err(|_| not_a_variant())?;
        let mut entries = tagged.into_iter();
        match (entries.next(), entries.next()) {
            (Some((name, data)), None) => (name, data.get().to_owned()),
            _ => return Err(not_a_variant()),
        }
    };
    let event_type = EventType::parse(&name, "eventType")?;
    Ok((event_type, EventData::from_json(data, "data")?))
}

/// Rebuilds a domain event from its stored type and data.
pub fn decode_event<E: DomainEvent>(
    event_type: &EventType,
    data: &EventData,
) -> Result<E, StoreError> {
    let data: Value = serde_json::from_str(data.as_json())
        .map_err(|e| StoreError::internal("decoding event data", e))?;
    let name = event_type.as_str().to_owned();
    let unit = data.as_object().is_some_and(|m| m.is_empty());
    let tagged = Value::Object([(name.clone(), data)].into_iter().collect());
    match serde_json::from_value(tagged) {
        Ok(event) => Ok(event),
        Err(_) if unit => serde_json::from_value(Value::String(name))
            .map_err(|e| StoreError::internal(format!("decoding a {event_type} event"), e)),
        Err(e) => Err(StoreError::internal(
            format!("decoding a {event_type} event"),
            e,
        )),
    }
}

/// The logic of one kind of aggregate. `decide` and `apply` are pure and synchronous: no I/O,
/// no clock, no randomness, so they are tested without any store (see the `testkit`).
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync {
    /// Streams of this aggregate are `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;
    /// The shape of the state as snapshots store it. Bump it when the state's fields change:
    /// snapshots of other versions are then ignored and the state is rebuilt from events.
    const STATE_SCHEMA_VERSION: u32 = 1;
    /// Snapshot every this many events; 0 never snapshots.
    const SNAPSHOT_EVERY: u64 = 100;

    type Event: DomainEvent;
    type Command;
    /// Why a command is refused: a domain outcome, never an infrastructure failure.
    type Error: std::error::Error + Send + Sync + 'static;

    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    fn apply(&mut self, event: &Self::Event);
}

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
    fn event_id(&self, stream: &StreamId, index: usize) -> Uuid {
        match &self.idempotency_key {
            // The stream's length first, so that no (stream, key) pair reads as another.
            Some(key) => Uuid::new_v5(
                &COMMAND_NAMESPACE,
                format!("{}:{stream}{key}#{index}", stream.as_str().len()).as_bytes(),
            ),
            None => Uuid::now_v7(),
        }
    }

    fn metadata(&self) -> Result<Metadata, StoreError> {
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

/// An aggregate as loaded: its state, the version it reflects, and what loading cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    pub state: A,
    /// The stream version the state reflects; 0 for a new aggregate.
    pub version: u64,
    /// Events read and applied by this load.
    pub events_read: u64,
    /// The version of the snapshot the load started from, if it used one.
    pub snapshot_version: Option<u64>,
}

/// Why a command did not go through.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error("command rejected: {0}")]
    Rejected(#[source] E),
    /// Other writers kept changing the aggregate between load and save.
    #[error("the aggregate kept changing concurrently ({attempts} attempts)")]
    Conflict { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a save stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The aggregate changed since it was loaded: load and decide again.
    #[error("the aggregate was at version {loaded} when loaded and is now at {current}")]
    Conflict { loaded: u64, current: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a successful command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed<A> {
    pub state: A,
    /// The stream version after the command's events.
    pub version: u64,
    pub event_ids: Vec<Uuid>,
    /// Loads that lost a race and were repeated.
    pub retries: u32,
}

/// How a repository uses snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Load from snapshots; write them after the command's events are stored, awaited, with
    /// errors logged and ignored. Right for Lambda, which freezes background work once it
    /// has answered.
    Inline,
    /// Load from snapshots; write them on a background task, so the command returns first
    /// (without a running tokio runtime this falls back to `Inline`).
    Background,
    /// Neither read nor write snapshots: every load replays the whole stream.
    Off,
}

/// Most loads and saves one command makes before giving up on a hot aggregate.
pub const DEFAULT_COMMAND_ATTEMPTS: u32 = 5;

/// Loads and saves aggregates of type `A` in the store.
#[derive(Debug, Clone)]
pub struct Repository<A, L> {
    store: EventStore<L>,
    upcasters: Upcasters,
    snapshot_every: u64,
    snapshot_mode: SnapshotMode,
    attempts: u32,
    aggregate: PhantomData<fn() -> A>,
}

impl<A, L> Repository<A, L>
where
    A: Aggregate,
    L: EventLog + SnapshotStore + Clone + 'static,
{
    pub fn new(store: EventStore<L>) -> Self {
        Self {
            store,
            upcasters: Upcasters::new(),
            snapshot_every: A::SNAPSHOT_EVERY,
            snapshot_mode: SnapshotMode::Inline,
            attempts: DEFAULT_COMMAND_ATTEMPTS,
            aggregate: PhantomData,
        }
    }

    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Overrides `A::SNAPSHOT_EVERY`; 0 never snapshots.
    pub fn with_snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_every = events;
        self
    }

    pub fn with_snapshot_mode(mut self, mode: SnapshotMode) -> Self {
        self.snapshot_mode = mode;
        self
    }

    /// Overrides [`DEFAULT_COMMAND_ATTEMPTS`] (at least 1).
    pub fn with_command_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The stream of aggregate `id`: `<CATEGORY>-<id>`.
    pub fn stream_id(id: &str) -> Result<StreamId, StoreError> {
        Ok(StreamId::parse(&format!("{}-{id}", A::CATEGORY), "id")?)
    }

    /// The aggregate's current state: the latest snapshot if it is usable, then every event
    /// after it, upcast, page by page.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, StoreError> {
        let stream = Self::stream_id(id)?;
        let mut loaded = match self.usable_snapshot(&stream).await {
            Some((state, version)) => Loaded {
                state,
                version,
                events_read: 0,
                snapshot_version: Some(version),
            },
            None => Loaded {
                state: A::default(),
                version: 0,
                events_read: 0,
                snapshot_version: None,
            },
        };
        let mut from = loaded.version + 1;
        loop {
            let read = StreamRead {
                from: Some(from),
                direction: Direction::Forward,
                limit: MAX_READ_LIMIT,
            };
            let page = match self.store.read_stream(&stream, read).await {
                Ok(page) => page,
                Err(StoreError::StreamNotFound(_)) => return Ok(loaded),
                Err(e) => return Err(e),
            };
            for event in page.events {
                let version = event.version;
                let domain = self.decode(event)?;
                loaded.state.apply(&domain);
                loaded.version = version;
                loaded.events_read += 1;
            }
            match page.next {
                Some(next) => from = next,
                None => return Ok(loaded),
            }
        }
    }

    /// The snapshot's state if there is one in this aggregate's state schema that decodes.
    /// Anything else (none, another schema, a broken one, a failed read) means a full
    /// rebuild from events, never a failed load.
    async fn usable_snapshot(&self, stream: &StreamId) -> Option<(A, u64)> {
        if self.snapshot_mode == SnapshotMode::Off {
            return None;
        }
        let snapshot = match self.store.log().load_snapshot(stream).await {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(err) => {
                tracing::warn!(%stream, error = %err, "snapshot unreadable; rebuilding from events");
                return None;
            }
        };
        if snapshot.schema_version != A::STATE_SCHEMA_VERSION {
            tracing::info!(%stream, schema = snapshot.schema_version, "snapshot of another state schema ignored");
            return None;
        }
        match serde_json::from_str(snapshot.state.as_json()) {
            Ok(state) => Some((state, snapshot.version)),
            Err(err) => {
                tracing::warn!(%stream, error = %err, "snapshot does not decode; rebuilding from events");
                None
            }
        }
    }

    fn decode(&self, event: RecordedEvent) -> Result<A::Event, StoreError> {
        let event = self.upcasters.upcast(event)?;
        decode_event(&event.event_type, &event.data)
    }

    /// Runs `command` against aggregate `id`: load, decide, append at exactly the loaded
    /// version. When another writer got there first, it loads and decides again, up to the
    /// repository's attempts; so a decision is always made on the state it is appended to.
    pub async fn execute(
        &self,
        id: &str,
        command: &A::Command,
        context: &CommandContext,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let stream = Self::stream_id(id)?;
        for attempt in 0..self.attempts {
            let loaded = self.load(id).await?;
            if let Some((version, event_ids)) = self
                .earlier_attempt(&stream, loaded.version, context)
                .await?
            {
                return Ok(Executed {
                    state: loaded.state,
                    version,
                    event_ids,
                    retries: attempt,
                });
            }
            let events = loaded
                .state
                .decide(command)
                .map_err(CommandError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    state: loaded.state,
                    version: loaded.version,
                    event_ids: vec![],
                    retries: attempt,
                });
            }
            match self
                .append_decided(&stream, loaded.version, &events, context)
                .await
            {
                Ok(outcome) => {
                    let mut state = loaded.state;
                    for event in &events {
                        state.apply(event);
                    }
                    if self.crosses_snapshot_point(loaded.version, outcome.to_version) {
                        self.snapshot(&stream, &state, outcome.to_version).await;
                    }
                    return Ok(Executed {
                        state,
                        version: outcome.to_version,
                        event_ids: outcome.event_ids,
                        retries: attempt,
                    });
                }
                Err(SaveError::Conflict { .. }) => continue,
                Err(SaveError::Store(e)) => return Err(e.into()),
            }
        }
        Err(CommandError::Conflict {
            attempts: self.attempts,
        })
    }

    /// For a command with an idempotency key: whether an earlier attempt of it is stored,
    /// as the version of its last event and its event ids. Looks through the stream's last
    /// [`IDEMPOTENCY_WINDOW`] events (one Query of ids) for the command's first event id.
    async fn earlier_attempt(
        &self,
        stream: &StreamId,
        version: u64,
        context: &CommandContext,
    ) -> Result<Option<(u64, Vec<Uuid>)>, StoreError> {
        if context.idempotency_key.is_none() || version == 0 {
            return Ok(None);
        }
        let from = version.saturating_sub(IDEMPOTENCY_WINDOW - 1).max(1);
        let stored = self.store.log().event_ids(stream, from, version).await?;
        let first = context.event_id(stream, 0);
        let Some(start) = stored.iter().position(|(_, id)| *id == first) else {
            return Ok(None);
        };
        // The command's events are consecutive (one atomic append): follow them.
        let mut last = stored[start].0;
        let mut ids = Vec::new();
        for (index, (v, id)) in stored[start..].iter().enumerate() {
            if *id != context.event_id(stream, index) {
                break;
            }
            last = *v;
            ids.push(*id);
        }
        Ok(Some((last, ids)))
    }

    /// Appends `events` to aggregate `id` only if its stream is still at `loaded_version`
    /// (the version the events were decided on), with the context's ids in their metadata.
    /// For apps that load and decide themselves; [`Repository::execute`] does all three and
    /// retries on conflicts.
    ///
    /// With an idempotency key, a command whose earlier attempt is among the last
    /// [`IDEMPOTENCY_WINDOW`] events up to `loaded_version` is not appended again: the
    /// outcome names the stored events, with `created: false`.
    pub async fn save(
        &self,
        id: &str,
        loaded_version: u64,
        events: &[A::Event],
        context: &CommandContext,
    ) -> Result<AppendOutcome, SaveError> {
        let stream = Self::stream_id(id)?;
        if let Some((last, event_ids)) = self
            .earlier_attempt(&stream, loaded_version, context)
            .await?
        {
            return Ok(AppendOutcome {
                stream_id: stream,
                from_version: last + 1 - event_ids.len() as u64,
                to_version: last,
                event_ids,
                created: false,
            });
        }
        self.append_decided(&stream, loaded_version, events, context)
            .await
    }

    /// The append of `save`, for a decision made on a load that was already checked for an
    /// earlier attempt.
    async fn append_decided(
        &self,
        stream: &StreamId,
        loaded_version: u64,
        events: &[A::Event],
        context: &CommandContext,
    ) -> Result<AppendOutcome, SaveError> {
        let stream = stream.clone();
        let batch = self.batch(&stream, events, context)?;
        let expected = ExpectedVersion::Exact(loaded_version);
        match self.store.append(&stream, expected, &batch).await {
            Ok(outcome) => Ok(outcome),
            Err(StoreError::WrongExpectedVersion { current, .. }) => Err(SaveError::Conflict {
                loaded: loaded_version,
                current,
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn batch(
        &self,
        stream: &StreamId,
        events: &[A::Event],
        context: &CommandContext,
    ) -> Result<AppendBatch, StoreError> {
        let metadata = context.metadata()?;
        let events = events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let (event_type, data) = encode_event(event)?;
                let mut new = NewEvent::new(event_type, data);
                new.event_id = context.event_id(stream, index);
                new.schema_version = event.schema_version();
                new.metadata = metadata.clone();
                Ok(new)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        AppendBatch::new(events)
    }

    fn crosses_snapshot_point(&self, before: u64, after: u64) -> bool {
        self.snapshot_mode != SnapshotMode::Off
            && self.snapshot_every > 0
            && after / self.snapshot_every > before / self.snapshot_every
    }

    /// Writes a snapshot of `state` at `version`. Never fails the command: errors are logged.
    async fn snapshot(&self, stream: &StreamId, state: &A, version: u64) {
        let snapshot = match snapshot_of(state, version) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(%stream, error = %err, "snapshot not written");
                return;
            }
        };
        let (log, stream) = (self.store.log().clone(), stream.clone());
        let write = async move {
            if let Err(err) = log.save_snapshot(&stream, &snapshot).await {
                tracing::warn!(%stream, error = %err, "snapshot not written");
            }
        };
        match (self.snapshot_mode, tokio::runtime::Handle::try_current()) {
            (SnapshotMode::Background, Ok(runtime)) => {
                runtime.spawn(write);
            }
            (SnapshotMode::Off, _) => {}
            _ => write.await,
        }
    }
}

fn snapshot_of<A: Aggregate>(state: &A, version: u64) -> Result<Snapshot, StoreError> {
    let text =
        serde_json::to_string(state).map_err(|e| StoreError::internal("encoding a snapshot", e))?;
    if text.len() > MAX_SNAPSHOT_STATE_BYTES {
        return Err(StoreError::PayloadTooLarge {
            what: "snapshot state".into(),
            actual: text.len(),
            limit: MAX_SNAPSHOT_STATE_BYTES,
        });
    }
    Ok(Snapshot {
        version,
        schema_version: A::STATE_SCHEMA_VERSION,
        state: EventData::from_json(text, "state")?,
        created_at: Timestamp::now(),
    })
}
