//! Conversation events and the conversation projection.
//!
//! A conversation is a stream of [`Event`]s (DESIGN §4). Its state,
//! [`Conversation`], is a pure fold over that stream: [`Conversation::apply`]
//! never reads a clock or any store, so rebuilding from the log always gives
//! the stored projection back (invariant 4).
//!
//! # Layout
//! - `event.rs` — the versioned event types and their JSON encoding.
//! - `conversation.rs` — the projection and its fold.
#![forbid(unsafe_code)]

mod conversation;
mod event;

pub use conversation::{
    ActionState, Conversation, ConversationStatus, FOLD_VERSION, HumanHold, PendingAction,
    SentReply,
};
pub use event::{
    Action, ActionOutcome, Author, DecisionMode, EVENT_SCHEMA_VERSION, Event, EventBody,
    EventError, IntentMatch, PlannedAction, SuppressReason,
};

/// Rebuild a conversation from its events, in order.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Conversation {
    events
        .into_iter()
        .fold(Conversation::default(), |state, event| state.apply(event))
}
