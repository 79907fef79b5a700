//! Handing a conversation back to automation: the operator's way out of
//! `HandedToHuman` (`switchyard handback CONVERSATION --reason R`).
use ports::EventStore;

use crate::event::EventBody;
use crate::log::{ConversationLog, LogError};
use crate::state::HumanHold;

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
) -> Result<HandBack, LogError> {
    let causation = format!("op:handback:{}", uuid::Uuid::now_v7());
    let released =
        ConversationLog::append_at_version(events, conversation, &causation, None, |state| {
            let hold = state.human_hold.clone()?;
            let back = EventBody::HandedBack {
                by: by.to_owned(),
                reason: reason.to_owned(),
            };
            Some((hold, vec![back]))
        })
        .await?;
    Ok(released.map_or(HandBack::NotHeld, HandBack::Released))
}
