//! The conversation projection: a pure fold over the stream.
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Action, ActionOutcome, Author, Decision, Event, EventBody};

/// The rules of the fold this build applies. Bumped whenever `apply`
/// changes what it derives from the same events, so that a projection
/// stored by an older build is recognised and rebuilt from the log.
/// 2: a reply of unknown outcome counts as sent; `human_hold`.
pub const FOLD_VERSION: u32 = 2;

/// How many recent message ids the projection remembers (to tell which
/// messages of a fetched ticket are new).
const RECENT_MESSAGE_IDS: usize = 100;
/// Characters of the last message kept for `inspect`.
const PREVIEW_CHARS: usize = 160;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// Where a conversation stands, as `status` shows it.
pub enum ConversationStatus {
    /// Messages received, nothing decided yet.
    #[default]
    New,
    /// The last decision routed it (tags applied or requested).
    Routed,
    /// An auto-reply was sent.
    AutoReplied,
    /// A human must look at it (Tier-0, low confidence, breaker open,
    /// unknown outcome...).
    HandedToHuman,
}

/// Where a requested action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Planned by a decision; not attempted yet.
    Planned,
    /// Recorded as requested (about to be performed); no outcome yet.
    Requested,
    /// Failed before anything was sent; may be performed again.
    RetryableFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// An action planned or requested that has no terminal outcome yet.
pub struct PendingAction {
    /// What to do.
    pub action: Action,
    /// Where it stands.
    pub state: ActionState,
    /// Times it was requested.
    pub attempts: u32,
    /// The envelope event that caused it.
    pub causation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The error of its last retryable failure.
    pub last_error: Option<String>,
}

/// Since when, and why, a human has the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HumanHold {
    /// When the hold began.
    pub since: DateTime<Utc>,
    /// The first hand-off's reason.
    pub reason: String,
}

/// An auto-reply that went out, or may have (its outcome is unknown: for
/// every reply guardrail it counts as sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentReply {
    /// When it went out.
    pub at: DateTime<Utc>,
    /// Its template.
    pub template: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// The last message received, for `inspect`.
pub struct LastMessage {
    /// Its event id.
    pub event_id: String,
    /// Its source message id.
    pub message_id: Option<String>,
    /// Who wrote it.
    pub author: Author,
    /// Its channel.
    pub channel: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Its first characters.
    pub preview: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// The last action that reached a terminal outcome, for `inspect`.
pub struct LastAction {
    /// Its key.
    pub key: String,
    /// Its name (`add_tags`, `auto_reply`).
    pub action: String,
    /// How it ended.
    pub outcome: ActionOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Why, when it did not complete.
    pub reason: Option<String>,
}

/// State of one conversation. Only ever produced by folding events.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Conversation {
    /// Seq of the last event folded in (0 = empty stream).
    pub version: u64,
    /// [`FOLD_VERSION`] of the build that folded it (0: before there was one).
    #[serde(default)]
    pub fold: u32,
    /// Where it stands.
    pub status: ConversationStatus,
    /// The Richpanel ticket it maps to, when known.
    pub ticket_id: Option<String>,
    /// The channel of the last message.
    pub channel: Option<String>,
    /// Messages received.
    pub messages: u64,
    /// Of them, from the customer.
    pub customer_messages: u64,
    /// The last message.
    pub last_message: Option<LastMessage>,
    /// Distinct intents seen, first-seen order.
    pub intents: Vec<String>,
    /// The route of the last decision.
    pub route: Option<String>,
    /// Tags the worker added.
    pub tags_applied: BTreeSet<String>,
    /// Completion times of auto-replies within 24 h of the latest event.
    pub auto_replies_24h: Vec<SentReply>,
    /// Auto-replies sent, ever.
    pub auto_replies_total: u64,
    /// Requested actions without a terminal outcome, by idempotency key.
    pub pending: BTreeMap<String, PendingAction>,
    /// The last action that ended.
    pub last_action: Option<LastAction>,
    /// Decisions made.
    pub decisions: u64,
    /// Minimal "ticket has news" webhooks processed.
    pub ticket_updates: u64,
    /// Actions suppressed.
    pub suppressed: u64,
    /// Action failures (retryable or not).
    pub failed: u64,
    /// Hand-offs to a human.
    pub fallbacks: u64,
    /// Set by the first `HandedToHuman` since the last `HandedBack`: while
    /// set, no automated reply is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_hold: Option<HumanHold>,
    /// Auto-replies whose outcome is unknown (an interrupted or ambiguous
    /// call); each is also in `auto_replies_24h`, counted as sent.
    #[serde(default)]
    pub auto_replies_unknown: u64,
    /// Most recent message ids, oldest first.
    pub recent_message_ids: Vec<String>,
    /// When the last event was recorded.
    pub last_event_at: Option<DateTime<Utc>>,
}

impl Conversation {
    /// Fold one event in. Pure: the result depends only on `self` and
    /// `event`.
    pub fn apply(mut self, event: &Event) -> Self {
        self.version = event.seq;
        self.fold = FOLD_VERSION;
        self.last_event_at = Some(event.at);
        self.prune_replies(event.at);
        match &event.body {
            EventBody::MessageReceived { .. } => self.on_message(event),
            EventBody::TicketUpdated { ticket_id, .. } => {
                self.ticket_updates += 1;
                self.ticket_id = Some(ticket_id.clone());
            }
            EventBody::DecisionMade(decision) => self.on_decision(decision, &event.causation_id),
            EventBody::ActionRequested { key, action } => {
                let attempts = self.pending.get(key).map_or(0, |p| p.attempts) + 1;
                self.pending.insert(
                    key.clone(),
                    PendingAction {
                        action: action.clone(),
                        state: ActionState::Requested,
                        attempts,
                        causation_id: event.causation_id.clone(),
                        last_error: None,
                    },
                );
            }
            EventBody::ActionCompleted { key, .. } => self.on_completed(key, event.at),
            EventBody::ActionFailed {
                key,
                error,
                retryable,
            } => self.on_failed(key, error, *retryable),
            EventBody::ActionSuppressed { key, reason, .. } => {
                self.suppressed += 1;
                if let Some(p) = self.pending.remove(key) {
                    let reason = Some(reason.as_str().to_owned());
                    self.finish(key, &p.action, ActionOutcome::Suppressed, reason);
                }
            }
            EventBody::ActionOutcomeUnknown { key } => self.on_outcome_unknown(key, event.at),
            EventBody::HandedToHuman { reason } => {
                self.fallbacks += 1;
                self.status = ConversationStatus::HandedToHuman;
                if self.human_hold.is_none() {
                    self.human_hold = Some(HumanHold {
                        since: event.at,
                        reason: reason.clone(),
                    });
                }
            }
            EventBody::HandedBack { .. } => {
                self.human_hold = None;
                if self.status == ConversationStatus::HandedToHuman {
                    self.status = ConversationStatus::Routed;
                }
            }
        }
        self
    }

    fn on_message(&mut self, event: &Event) {
        let EventBody::MessageReceived {
            message_id,
            channel,
            author,
            text,
            ticket_id,
            ..
        } = &event.body
        else {
            return;
        };
        self.messages += 1;
        if *author == Author::Customer {
            self.customer_messages += 1;
        }
        if ticket_id.is_some() {
            self.ticket_id.clone_from(ticket_id);
        }
        self.channel = Some(channel.clone());
        if let Some(id) = message_id {
            self.recent_message_ids.push(id.clone());
            let excess = self
                .recent_message_ids
                .len()
                .saturating_sub(RECENT_MESSAGE_IDS);
            self.recent_message_ids.drain(..excess);
        }
        self.last_message = Some(LastMessage {
            event_id: event.event_id.clone(),
            message_id: message_id.clone(),
            author: *author,
            channel: channel.clone(),
            at: event.at,
            preview: text.chars().take(PREVIEW_CHARS).collect(),
        });
    }

    fn on_decision(&mut self, decision: &Decision, causation_id: &str) {
        self.decisions += 1;
        for planned in &decision.actions {
            self.pending
                .entry(planned.key.clone())
                .or_insert_with(|| PendingAction {
                    action: planned.action.clone(),
                    state: ActionState::Planned,
                    attempts: 0,
                    causation_id: causation_id.to_owned(),
                    last_error: None,
                });
        }
        if let Some(intent) = &decision.intent
            && !self.intents.contains(intent)
        {
            self.intents.push(intent.clone());
        }
        if decision.route.is_some() {
            self.route.clone_from(&decision.route);
            if self.status == ConversationStatus::New {
                self.status = ConversationStatus::Routed;
            }
        }
    }

    fn on_completed(&mut self, key: &str, at: DateTime<Utc>) {
        let Some(p) = self.pending.remove(key) else {
            return;
        };
        match &p.action {
            Action::AddTags { tags, .. } => {
                self.tags_applied.extend(tags.iter().cloned());
            }
            Action::AutoReply { template, .. } => {
                self.auto_replies_24h.push(SentReply {
                    at,
                    template: template.clone(),
                });
                self.auto_replies_total += 1;
                self.status = ConversationStatus::AutoReplied;
            }
        }
        self.finish(key, &p.action, ActionOutcome::Completed, None);
    }

    fn on_failed(&mut self, key: &str, error: &str, retryable: bool) {
        self.failed += 1;
        if retryable {
            if let Some(p) = self.pending.get_mut(key) {
                p.state = ActionState::RetryableFailure;
                p.last_error = Some(error.to_owned());
            }
        } else if let Some(p) = self.pending.remove(key) {
            self.finish(
                key,
                &p.action,
                ActionOutcome::Failed,
                Some(error.to_owned()),
            );
        }
    }

    fn on_outcome_unknown(&mut self, key: &str, at: DateTime<Utc>) {
        let Some(p) = self.pending.remove(key) else {
            return;
        };
        // A reply that may have gone out counts as sent for every reply
        // guardrail: never risk sending it twice.
        if let Action::AutoReply { template, .. } = &p.action {
            self.auto_replies_24h.push(SentReply {
                at,
                template: template.clone(),
            });
            self.auto_replies_unknown += 1;
        }
        self.finish(key, &p.action, ActionOutcome::Unknown, None);
    }

    /// Auto-replies completed in the 24 h before `now`.
    pub fn auto_replies_since(&self, now: DateTime<Utc>) -> usize {
        self.replies_within_24h(now).count()
    }

    /// Whether `template` was sent in the 24 h before `now`.
    pub fn template_sent_since(&self, template: &str, now: DateTime<Utc>) -> bool {
        self.replies_within_24h(now).any(|r| r.template == template)
    }

    fn replies_within_24h(&self, now: DateTime<Utc>) -> impl Iterator<Item = &SentReply> {
        self.auto_replies_24h
            .iter()
            .filter(move |r| now.signed_duration_since(r.at) < Duration::hours(24))
    }

    /// Whether `message_id` is among the recent message ids.
    pub fn has_message(&self, message_id: &str) -> bool {
        self.recent_message_ids.iter().any(|m| m == message_id)
    }

    fn finish(
        &mut self,
        key: &str,
        action: &Action,
        outcome: ActionOutcome,
        reason: Option<String>,
    ) {
        self.last_action = Some(LastAction {
            key: key.to_owned(),
            action: action.name().to_owned(),
            outcome,
            reason,
        });
    }

    fn prune_replies(&mut self, now: DateTime<Utc>) {
        self.auto_replies_24h
            .retain(|r| now.signed_duration_since(r.at) < Duration::hours(24));
    }
}
