//! A loaded conversation stream: appends events with the expected version,
//! atomically with the folded projection.
use chrono::Utc;
use ports::{EventStore, NewEvent, PortError};
use projections::{Conversation, EVENT_SCHEMA_VERSION, Event, EventBody, replay};

use crate::WorkerError;

/// The stream of one conversation, as of its last append.
#[derive(Debug)]
pub struct Stream {
    pub name: String,
    pub state: Conversation,
    /// Envelope event id that causes what is appended now.
    pub causation: String,
    pub trace_id: Option<String>,
    /// Version stored in the event log (the state may be ahead by the
    /// staged events).
    committed: u64,
    staged: Vec<Event>,
}

impl Stream {
    /// Load the stored projection (rebuilding from the log if it is missing,
    /// undecodable, or folded by an older build's rules — the log is the
    /// truth).
    pub async fn load(
        events: &dyn EventStore,
        name: &str,
        causation: &str,
        trace_id: Option<String>,
    ) -> Result<Stream, WorkerError> {
        let state = match events.projection(name).await? {
            Some(p) => match serde_json::from_str::<Conversation>(&p.state) {
                Ok(c) if c.version == p.version && c.fold == projections::FOLD_VERSION => c,
                _ => rebuild(events, name).await?,
            },
            None => Conversation::default(),
        };
        Ok(Stream {
            name: name.to_owned(),
            committed: state.version,
            staged: Vec::new(),
            state,
            causation: causation.to_owned(),
            trace_id,
        })
    }

    /// [`Stream::flush`] for a message's first append, whose events include
    /// `own_id` (the message's event id). Optimistic: no "already in the
    /// log?" read first. `Ok(true)`: it was recorded before (a redelivery),
    /// so what was staged is dropped and the stored state reloaded to resume
    /// from. Only `own_id` proves that: a taken derived id
    /// (`ev:<stream>:<seq>`) means a stale version — an error, retried.
    pub async fn flush_or_resume(
        &mut self,
        events: &dyn EventStore,
        own_id: &str,
    ) -> Result<bool, WorkerError> {
        match self.flush(events).await {
            Ok(()) => Ok(false),
            Err(PortError::AlreadyAppended { event_id }) if event_id == own_id => {
                *self = Stream::load(events, &self.name, &self.causation, self.trace_id.clone())
                    .await?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Fold `bodies` into the state now and keep them for the next
    /// [`Stream::flush`] (`(event_id, body)`; None = derived id). Lets the
    /// outcome of one action and the request of the next share one durable
    /// append.
    pub fn stage(&mut self, bodies: Vec<(Option<String>, EventBody)>) {
        let now = Utc::now();
        for (id, body) in bodies {
            let seq = self.state.version + 1;
            let event = Event {
                schema_version: EVENT_SCHEMA_VERSION,
                seq,
                event_id: id.unwrap_or_else(|| format!("ev:{}:{seq}", self.name)),
                causation_id: self.causation.clone(),
                at: now,
                trace_id: self.trace_id.clone(),
                body,
            };
            self.state = std::mem::take(&mut self.state).apply(&event);
            self.staged.push(event);
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
}

/// Appends tried by [`Stream::append_at_version`] while others append
/// to the same stream.
const APPEND_ATTEMPTS: usize = 5;

impl Stream {
    /// Load `name`, let `events_for` look at its state and name what to
    /// append (`None`: nothing), and append that at the loaded version;
    /// on a sequence conflict (someone appended meanwhile) load and ask
    /// again. For appends from outside a message's own processing: an
    /// operator's hand-back, the close of a dead-lettered message.
    /// `Ok(None)` when `events_for` declined.
    pub async fn append_at_version<T>(
        events: &dyn EventStore,
        name: &str,
        causation: &str,
        trace_id: Option<String>,
        mut events_for: impl FnMut(&Conversation) -> Option<(T, Vec<EventBody>)>,
    ) -> Result<Option<T>, WorkerError> {
        for _ in 0..APPEND_ATTEMPTS {
            let mut stream = Stream::load(events, name, causation, trace_id.clone()).await?;
            let Some((answer, bodies)) = events_for(&stream.state) else {
                return Ok(None);
            };
            stream.stage(bodies.into_iter().map(|b| (None, b)).collect());
            match stream.flush(events).await {
                Ok(()) => return Ok(Some(answer)),
                Err(PortError::SequenceConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(WorkerError::Port(PortError::Unavailable(format!(
            "the stream kept changing: {APPEND_ATTEMPTS} appends lost to others; try again"
        ))))
    }
}

/// Decode a whole stream.
pub async fn read_events(events: &dyn EventStore, name: &str) -> Result<Vec<Event>, WorkerError> {
    events
        .read_stream(name, 0)
        .await?
        .iter()
        .map(|e| {
            Event::decode(&e.body).map_err(|err| WorkerError::Corrupt {
                stream: name.to_owned(),
                reason: format!("event {} (seq {}): {err}", e.event_id, e.seq),
            })
        })
        .collect()
}

/// Rebuild a conversation from its log.
pub async fn rebuild(events: &dyn EventStore, name: &str) -> Result<Conversation, WorkerError> {
    Ok(replay(&read_events(events, name).await?))
}
