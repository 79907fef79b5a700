//! The typed conversation log over [`ports::EventStore`]: load a
//! conversation (its stored projection, rebuilt from the events when it is
//! missing, undecodable or folded by another build), stage events, flush
//! them at the expected version together with the folded projection,
//! resume after a redelivery, replay, and page through the streams.
use chrono::Utc;
use ports::{EventStore, NewEvent, PortError};

use crate::event::{EVENT_SCHEMA_VERSION, Event, EventBody};
use crate::state::{Conversation, FOLD_VERSION};

/// Errors of the conversation log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A port failed. Caller: transient ones are retried via visibility;
    /// `Invalid` ones never succeed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A stored event could not be decoded. Caller: surface it
    /// (`switchyard replay --verify` names the stream); never skip it.
    #[error("stream {stream}: {reason}")]
    Corrupt {
        /// The conversation.
        stream: String,
        /// Which event, and what is wrong with it.
        reason: String,
    },
}

/// The stored projection of a stream, as this build reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredState {
    /// No projection is stored (no event appended yet).
    Missing,
    /// Stored, decodable, at its version and folded by this build's rules.
    Current(Box<Conversation>),
    /// Stored but not usable as it is (undecodable, at another version, or
    /// folded by another [`FOLD_VERSION`]): rebuild it from the log.
    Stale {
        /// The version stored beside it.
        version: u64,
        /// Why it is not current.
        reason: String,
    },
}

/// Read and decode the stored projection of `name`: the one place that
/// does.
pub async fn stored_state(events: &dyn EventStore, name: &str) -> Result<StoredState, LogError> {
    let Some(p) = events.projection(name).await? else {
        return Ok(StoredState::Missing);
    };
    let stale = |reason: String| StoredState::Stale {
        version: p.version,
        reason,
    };
    Ok(match serde_json::from_str::<Conversation>(&p.state) {
        Err(e) => stale(format!("undecodable: {e}")),
        Ok(c) if c.version != p.version => stale(format!(
            "folded to version {} but stored at {}",
            c.version, p.version
        )),
        Ok(c) if c.fold != FOLD_VERSION => stale(format!(
            "folded by fold version {} (this build: {FOLD_VERSION})",
            c.fold
        )),
        Ok(c) => StoredState::Current(Box::new(c)),
    })
}

/// Decode a whole stream, in order.
pub async fn read_events(events: &dyn EventStore, name: &str) -> Result<Vec<Event>, LogError> {
    events
        .read_stream(name, 0)
        .await?
        .iter()
        .map(|e| {
            Event::decode(&e.body).map_err(|err| LogError::Corrupt {
                stream: name.to_owned(),
                reason: format!("event {} (seq {}): {err}", e.event_id, e.seq),
            })
        })
        .collect()
}

/// Rebuild a conversation from its log.
pub async fn rebuild(events: &dyn EventStore, name: &str) -> Result<Conversation, LogError> {
    Ok(crate::replay(&read_events(events, name).await?))
}

/// Stream names in ascending order, a page at a time.
#[derive(Debug)]
pub struct StreamPager<'a> {
    events: &'a dyn EventStore,
    after: Option<String>,
    done: bool,
}

impl<'a> StreamPager<'a> {
    /// Page through every stream of `events` from the first.
    pub fn new(events: &'a dyn EventStore) -> Self {
        StreamPager {
            events,
            after: None,
            done: false,
        }
    }

    /// The next (at most `limit`) stream names; `None` after the last.
    pub async fn next_page(&mut self, limit: usize) -> Result<Option<Vec<String>>, PortError> {
        if self.done || limit == 0 {
            return Ok(None);
        }
        let page = self
            .events
            .list_streams(self.after.as_deref(), limit)
            .await?;
        self.done = page.len() < limit;
        match page.last() {
            Some(last) => self.after = Some(last.clone()),
            None => return Ok(None),
        }
        Ok(Some(page))
    }
}

/// One conversation as of its last append, with events staged for the
/// next.
#[derive(Debug)]
pub struct ConversationLog {
    /// The stream (conversation id).
    pub name: String,
    /// The state, including what is staged.
    pub state: Conversation,
    /// Envelope event id that causes what is appended now.
    pub causation: String,
    /// W3C trace id recorded on every event appended now.
    pub trace_id: Option<String>,
    /// Version stored in the event log (the state may be ahead by the
    /// staged events).
    committed: u64,
    staged: Vec<Event>,
}

/// Appends tried by [`ConversationLog::append_at_version`] while others
/// append to the same stream.
const APPEND_ATTEMPTS: usize = 5;

impl ConversationLog {
    /// Load the stored projection (rebuilding from the log when it is not
    /// current — the log is the truth).
    pub async fn load(
        events: &dyn EventStore,
        name: &str,
        causation: &str,
        trace_id: Option<String>,
    ) -> Result<ConversationLog, LogError> {
        let state = match stored_state(events, name).await? {
            StoredState::Current(c) => *c,
            StoredState::Missing => Conversation::default(),
            StoredState::Stale { .. } => rebuild(events, name).await?,
        };
        Ok(ConversationLog {
            name: name.to_owned(),
            committed: state.version,
            staged: Vec::new(),
            state,
            causation: causation.to_owned(),
            trace_id,
        })
    }

    /// [`ConversationLog::flush`] for a message's first append, whose events
    /// include `own_id` (the message's event id). Optimistic: no "already in
    /// the log?" read first. `Ok(true)`: it was recorded before (a
    /// redelivery), so what was staged is dropped and the stored state
    /// reloaded to resume from. Only `own_id` proves that: a taken derived
    /// id (`ev:<stream>:<seq>`) means a stale version — an error, retried.
    pub async fn flush_or_resume(
        &mut self,
        events: &dyn EventStore,
        own_id: &str,
    ) -> Result<bool, LogError> {
        match self.flush(events).await {
            Ok(()) => Ok(false),
            Err(PortError::AlreadyAppended { event_id }) if event_id == own_id => {
                *self = ConversationLog::load(
                    events,
                    &self.name,
                    &self.causation,
                    self.trace_id.clone(),
                )
                .await?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Fold `body` into the state now and keep it for the next
    /// [`ConversationLog::flush`], under `event_id` (`None`: a derived id).
    /// Lets the outcome of one action and the request of the next share
    /// one durable append.
    pub fn stage_as(&mut self, event_id: Option<String>, body: EventBody) {
        let seq = self.state.version + 1;
        let event = Event {
            schema_version: EVENT_SCHEMA_VERSION,
            seq,
            event_id: event_id.unwrap_or_else(|| format!("ev:{}:{seq}", self.name)),
            causation_id: self.causation.clone(),
            at: Utc::now(),
            trace_id: self.trace_id.clone(),
            body,
        };
        self.state = std::mem::take(&mut self.state).apply(&event);
        self.staged.push(event);
    }

    /// [`ConversationLog::stage_as`] each of `bodies` under derived ids.
    pub fn stage(&mut self, bodies: impl IntoIterator<Item = EventBody>) {
        for body in bodies {
            self.stage_as(None, body);
        }
    }

    /// Write everything staged as one append (all or nothing) at the
    /// version last committed, together with the folded projection.
    pub async fn flush(&mut self, events: &dyn EventStore) -> Result<(), PortError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let new = self
            .staged
            .iter()
            .map(|e| NewEvent {
                event_id: e.event_id.clone(),
                kind: e.kind().to_owned(),
                body: e.to_json(),
            })
            .collect();
        let projection = serde_json::to_string(&self.state)
            .map_err(|e| PortError::Invalid(format!("projection encoding: {e}")))?;
        events
            .append(&self.name, self.committed, new, projection)
            .await?;
        self.committed = self.state.version;
        self.staged.clear();
        Ok(())
    }

    /// Load `name`, let `events_for` look at its state and name what to
    /// append (`None`: nothing), and append that at the loaded version; on
    /// a sequence conflict (someone appended meanwhile) load and ask again.
    /// For appends from outside a message's own processing: an operator's
    /// hand-back, the close of a dead-lettered message. `Ok(None)` when
    /// `events_for` declined.
    pub async fn append_at_version<T>(
        events: &dyn EventStore,
        name: &str,
        causation: &str,
        trace_id: Option<String>,
        mut events_for: impl FnMut(&Conversation) -> Option<(T, Vec<EventBody>)>,
    ) -> Result<Option<T>, LogError> {
        for _ in 0..APPEND_ATTEMPTS {
            let mut log = ConversationLog::load(events, name, causation, trace_id.clone()).await?;
            let Some((answer, bodies)) = events_for(&log.state) else {
                return Ok(None);
            };
            log.stage(bodies);
            match log.flush(events).await {
                Ok(()) => return Ok(Some(answer)),
                Err(PortError::SequenceConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(LogError::Port(PortError::Unavailable(format!(
            "the stream kept changing: {APPEND_ATTEMPTS} appends lost to others; try again"
        ))))
    }
}
