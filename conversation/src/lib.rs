//! The conversation aggregate: everything event-sourced about one
//! conversation, in one place (docs/architecture.md, "The conversation
//! aggregate").
//!
//! A conversation is a stream of [`Event`]s. Its state, [`Conversation`],
//! is a pure fold over that stream: [`Conversation::apply`] never reads a
//! clock or any store, so rebuilding from the log always gives the stored
//! projection back. Commands turn facts into events without touching a
//! downstream: [`decide`] a message, [`outcome_events`] of an action
//! performed, [`hand_back`] by an operator. [`ConversationLog`] stores
//! them at the expected version, the one way the worker, the operator
//! CLI and the load checker read and write a conversation.
//!
//! # Layout
//! - `event.rs` — the versioned event catalogue and its JSON encoding.
//! - `state.rs` — the projection and its fold.
//! - `rules.rs` — the rules file: intents, routes, templates, settings.
//! - `decide.rs` — a message's decision, each guardrail a named rule.
//! - `outcome.rs` — an action's domain outcome and the events it makes.
//! - `handback.rs` — an operator hands a conversation back to automation.
//! - `log.rs` — the typed log over `ports::EventStore`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decide;
mod event;
mod handback;
mod log;
mod outcome;
pub mod rules;
mod state;

pub use decide::{Decided, MessageFacts, ModelClassification, action_key, decide};
pub use event::{
    Action, ActionOutcome, Author, DecidedBy, Decision, DecisionMode, EVENT_SCHEMA_VERSION, Event,
    EventBody, EventError, Guardrail, IntentMatch, PlannedAction, SuppressReason,
};
pub use handback::{HandBack, hand_back};
pub use log::{
    ConversationLog, LogError, StoredState, StreamPager, read_events, rebuild, stored_state,
};
pub use outcome::{
    HELD_PREFIX, Next, Outcome, dead_letter_events, interrupted_events, next_pending,
    outcome_events,
};
pub use rules::{Rules, RulesError};
pub use state::{
    ActionState, Conversation, ConversationStatus, FOLD_VERSION, HumanHold, LastAction,
    LastMessage, PendingAction, SentReply,
};

/// Rebuild a conversation from its events, in order.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Conversation {
    events
        .into_iter()
        .fold(Conversation::default(), |state, event| state.apply(event))
}
