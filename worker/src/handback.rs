//! Handing a conversation back to automation: the operator's way out of
//! `HandedToHuman` (`switchyard handback CONVERSATION --reason R`).
use ports::{EventStore, PortError};
use projections::{EventBody, HumanHold};

use crate::WorkerError;
use crate::stream::Stream;

/// Appends attempted when the worker appends to the same stream meanwhile.
const ATTEMPTS: usize = 5;

/// What [`hand_back`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandBack {
    /// The hold was lifted: `HandedBack` is in the log.
    Released(HumanHold),
    /// The conversation was not with a human; nothing was written.
    NotHeld,
}

/// Record `HandedBack` on `conversation` if a human holds it: automated
/// replies resume with its next message. Appends at the expected version,
/// so it never races a worker's append (it reloads and tries again).
pub async fn hand_back(
    events: &dyn EventStore,
    conversation: &str,
    by: &str,
    reason: &str,
) -> Result<HandBack, WorkerError> {
    let causation = format!("op:handback:{}", uuid::Uuid::now_v7());
    for _ in 0..ATTEMPTS {
        let mut stream = Stream::load(events, conversation, &causation, None).await?;
        let Some(hold) = stream.state.human_hold.clone() else {
            return Ok(HandBack::NotHeld);
        };
        stream.stage(vec![(
            None,
            EventBody::HandedBack {
                by: by.to_owned(),
                reason: reason.to_owned(),
            },
        )]);
        match stream.flush(events).await {
            Ok(()) => return Ok(HandBack::Released(hold)),
            Err(PortError::SequenceConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(WorkerError::Port(PortError::Unavailable(
        "the conversation kept changing while handing it back; try again".into(),
    )))
}
