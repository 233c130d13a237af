//! Running commands: [`Repository::execute`] (load, decide, append, retry on conflict) and
//! [`Repository::save`], with the recognition of a keyed command's earlier attempt.

use uuid::Uuid;

use super::{encode_event, Aggregate, CommandContext, DomainEvent, Repository, IDEMPOTENCY_WINDOW};
use crate::snapshot::SnapshotStore;
use crate::{
    AppendBatch, AppendOutcome, EventLog, ExpectedVersion, NewEvent, StoreError, StreamId,
};

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

impl<A, L> Repository<A, L>
where
    A: Aggregate,
    L: EventLog + SnapshotStore + Clone + 'static,
{
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
            // Unless the load read event `loaded.version` itself, only a snapshot vouches
            // for it, and the write checks it.
            let read = loaded.version == 0 || loaded.read_head;
            match self
                .append_decided(&stream, loaded.version, &events, context, read)
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
        // The caller's version may never have been read: the write checks that it exists.
        self.append_decided(&stream, loaded_version, events, context, false)
            .await
    }

    /// The append of `save`, for a decision made on a load that was already checked for an
    /// earlier attempt. `read` says that this very load read the event at
    /// `loaded_version` (or found the stream empty), so the write need not check it exists.
    async fn append_decided(
        &self,
        stream: &StreamId,
        loaded_version: u64,
        events: &[A::Event],
        context: &CommandContext,
        read: bool,
    ) -> Result<AppendOutcome, SaveError> {
        let stream = stream.clone();
        let batch = self.batch(&stream, events, context)?;
        let appended = if read {
            self.store
                .append_after_read(&stream, loaded_version, &batch)
                .await
        } else {
            self.store
                .append(&stream, ExpectedVersion::Exact(loaded_version), &batch)
                .await
        };
        match appended {
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
}
