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
    /// Load the stored projection (rebuilding from the log if it is missing
    /// or undecodable — the log is the truth).
    pub async fn load(
        events: &dyn EventStore,
        name: &str,
        causation: &str,
        trace_id: Option<String>,
    ) -> Result<Stream, WorkerError> {
        let state = match events.projection(name).await? {
            Some(p) => match serde_json::from_str::<Conversation>(&p.state) {
                Ok(c) if c.version == p.version => c,
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

    /// Drop what is staged and load the stored state again (after an
    /// append found its events already in the log).
    pub async fn reload(&mut self, events: &dyn EventStore) -> Result<(), WorkerError> {
        *self = Stream::load(events, &self.name, &self.causation, self.trace_id.clone()).await?;
        Ok(())
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

    /// Stage and flush at once.
    pub async fn append(
        &mut self,
        events: &dyn EventStore,
        bodies: Vec<(Option<String>, EventBody)>,
    ) -> Result<(), PortError> {
        self.stage(bodies);
        self.flush(events).await
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
