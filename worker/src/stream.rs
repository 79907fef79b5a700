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
            state,
            causation: causation.to_owned(),
            trace_id,
        })
    }

    /// Append `bodies` as events `(event_id, body)` (None = derived id).
    /// All or nothing; on success the state includes them.
    pub async fn append(
        &mut self,
        events: &dyn EventStore,
        bodies: Vec<(Option<String>, EventBody)>,
    ) -> Result<(), PortError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut state = self.state.clone();
        let mut new = Vec::with_capacity(bodies.len());
        for (i, (id, body)) in bodies.into_iter().enumerate() {
            let seq = self.state.version + i as u64 + 1;
            let event = Event {
                schema_version: EVENT_SCHEMA_VERSION,
                seq,
                event_id: id.unwrap_or_else(|| format!("ev:{}:{seq}", self.name)),
                causation_id: self.causation.clone(),
                at: now,
                trace_id: self.trace_id.clone(),
                body,
            };
            state = state.apply(&event);
            new.push(NewEvent {
                event_id: event.event_id.clone(),
                kind: event.kind().to_owned(),
                body: event.to_json(),
            });
        }
        let projection = serde_json::to_string(&state)
            .map_err(|e| PortError::Invalid(format!("projection encoding: {e}")))?;
        events
            .append(&self.name, self.state.version, new, projection)
            .await?;
        self.state = state;
        Ok(())
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
