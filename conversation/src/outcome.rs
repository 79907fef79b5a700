//! What performing an action came to, in the domain's terms, and the
//! events that record it. The worker maps a downstream's answer to an
//! [`Outcome`] once; everything after that — which event, whether a human
//! takes over, whether the message is retried — is decided here.
use std::time::Duration;

use crate::event::{Action, EventBody, SuppressReason};
use crate::rules::Rules;
use crate::state::Conversation;

/// The result of one attempt at an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The downstream took it (2xx).
    Completed {
        /// Its HTTP status.
        status: u16,
    },
    /// Shadow mode: built and recorded, not sent.
    Shadowed {
        /// The request that would have been sent.
        request: serde_json::Value,
    },
    /// A safety layer refused it on purpose (kill switch, pause, breaker…).
    Suppressed {
        /// Which refusal.
        reason: SuppressReason,
        /// The layer's words.
        detail: String,
    },
    /// Not performed, and provably nothing was sent (429, no token): retry
    /// the message later.
    NotSent {
        /// What refused it.
        error: String,
        /// At the earliest (a `Retry-After`), when known.
        after: Option<Duration>,
    },
    /// Failed for good (a 4xx): never retried.
    Failed {
        /// What the downstream said.
        error: String,
    },
    /// Not performed because its downstream is paused: nothing was sent;
    /// the conversation waits until the downstream is resumed.
    Held {
        /// The paused downstream.
        downstream: String,
        /// The layer's words.
        detail: String,
    },
    /// May or may not have happened (timeout, 5xx, connection dropped).
    Ambiguous {
        /// What went wrong.
        error: String,
        /// At the earliest, when known.
        after: Option<Duration>,
    },
}

impl Outcome {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Shadowed { .. } => "shadowed",
            Outcome::Suppressed { reason, .. } => reason.as_str(),
            Outcome::NotSent { .. } => "retry_later",
            Outcome::Held { .. } => "held",
            Outcome::Failed { .. } => "failed",
            Outcome::Ambiguous { .. } => "unknown_outcome",
        }
    }
}

/// Whether the message's processing goes on after an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// On to the next pending action.
    Continue,
    /// Stop here; the conversation waits until `downstream` is resumed.
    Hold {
        /// The paused downstream.
        downstream: String,
        /// Why.
        reason: String,
    },
    /// Stop here; the message is tried again later.
    RetryLater {
        /// At the earliest, when known (else the backoff schedule).
        after: Option<Duration>,
        /// Why.
        reason: String,
    },
}

/// The events recording `outcome` of the action `key`, and whether
/// processing goes on. A sent reply is followed by a request to tag the
/// ticket as replied; a failure of a reply (or of the first action of a
/// conversation never handed over) hands it to a human; a reply whose
/// outcome is ambiguous is recorded as unknown — never retried.
pub fn outcome_events(
    key: &str,
    action: &Action,
    outcome: Outcome,
    state: &Conversation,
    rules: &Rules,
) -> (Vec<EventBody>, Next) {
    let key = key.to_owned();
    let retry = |error: String, after| Next::RetryLater {
        after,
        reason: error,
    };
    match outcome {
        Outcome::Completed { status } => {
            let mut events = vec![EventBody::ActionCompleted {
                key: key.clone(),
                status: Some(status),
            }];
            events.extend(replied_tags_action(rules, action).map(|follow_up| {
                EventBody::ActionRequested {
                    key: format!("{key}:tag"),
                    action: follow_up,
                }
            }));
            (events, Next::Continue)
        }
        Outcome::Shadowed { request } => (
            vec![EventBody::ActionSuppressed {
                key,
                reason: SuppressReason::Shadow,
                detail: "shadow mode: built and recorded, not sent".into(),
                would_send: Some(request),
            }],
            Next::Continue,
        ),
        Outcome::Suppressed { reason, detail } => (suppressed(key, reason, detail), Next::Continue),
        Outcome::NotSent { error, after } => (retryable_failure(key, &error), retry(error, after)),
        Outcome::Held { downstream, detail } => {
            let reason = format!("{HELD_PREFIX}{detail}");
            (
                retryable_failure(key, &reason),
                Next::Hold { downstream, reason },
            )
        }
        Outcome::Ambiguous { error, after } if action.idempotent() => {
            (retryable_failure(key, &error), retry(error, after))
        }
        Outcome::Ambiguous { error, .. } => (
            vec![
                EventBody::ActionOutcomeUnknown { key },
                EventBody::HandedToHuman {
                    reason: format!(
                        "{} may or may not have been sent ({error}): check the ticket",
                        action.name()
                    ),
                },
            ],
            Next::Continue,
        ),
        Outcome::Failed { error } => {
            let mut events = vec![EventBody::ActionFailed {
                key,
                error: error.clone(),
                retryable: false,
            }];
            if action.customer_facing() || state.fallbacks == 0 {
                events.push(EventBody::HandedToHuman {
                    reason: format!("{} failed: {error}", action.name()),
                });
            }
            (events, Next::Continue)
        }
    }
}

fn suppressed(key: String, reason: SuppressReason, detail: String) -> Vec<EventBody> {
    // An open breaker means the automation is not working: fall back to
    // human routing.
    let handoff = (reason == SuppressReason::BreakerOpen).then(|| EventBody::HandedToHuman {
        reason: format!("downstream unavailable: {detail}"),
    });
    let mut events = vec![EventBody::ActionSuppressed {
        key,
        reason,
        detail,
        would_send: None,
    }];
    events.extend(handoff);
    events
}

/// How the error of an action held by a pause begins (`status` counts a
/// conversation whose pending action says so as held, not stuck).
pub const HELD_PREFIX: &str = "held while paused: ";

fn retryable_failure(key: String, error: &str) -> Vec<EventBody> {
    vec![EventBody::ActionFailed {
        key,
        error: error.to_owned(),
        retryable: true,
    }]
}

/// The tag added once a reply went out (requested as a follow-up action).
fn replied_tags_action(rules: &Rules, action: &Action) -> Option<Action> {
    match action {
        Action::AutoReply { ticket_id, .. } => Some(Action::AddTags {
            ticket_id: ticket_id.clone(),
            tags: vec![rules.settings.replied_tag.clone()],
        }),
        Action::AddTags { .. } => None,
    }
}

/// The events that close an action found requested by an earlier,
/// interrupted delivery when it is not idempotent: its outcome is unknown
/// and a human takes over (it is never performed again).
pub fn interrupted_events(key: &str, action: &Action) -> Vec<EventBody> {
    vec![
        EventBody::ActionOutcomeUnknown {
            key: key.to_owned(),
        },
        EventBody::HandedToHuman {
            reason: format!(
                "{} outcome unknown after an interrupted attempt: check the ticket",
                action.name()
            ),
        },
    ]
}

/// The events that close every action the envelope `causation` left open
/// when its message is dead-lettered, so none is silently missing: a reply
/// requested without an outcome becomes `ActionOutcomeUnknown`, anything
/// else `ActionFailed`; then a human takes over with `reason`. Empty when
/// nothing is open.
pub fn dead_letter_events(state: &Conversation, causation: &str, reason: &str) -> Vec<EventBody> {
    let mut events: Vec<EventBody> = state
        .pending
        .iter()
        .filter(|(_, p)| p.causation_id == causation)
        .map(|(key, p)| {
            let key = key.clone();
            if p.state == crate::ActionState::Requested && !p.action.idempotent() {
                EventBody::ActionOutcomeUnknown { key }
            } else {
                EventBody::ActionFailed {
                    key,
                    error: "not performed: the message was dead-lettered".into(),
                    retryable: false,
                }
            }
        })
        .collect();
    if !events.is_empty() {
        events.push(EventBody::HandedToHuman {
            reason: format!("message dead-lettered: {reason}"),
        });
    }
    events
}

/// The next action `causation` planned to perform: non-customer-facing
/// first, then by key.
pub fn next_pending(
    state: &Conversation,
    causation: &str,
) -> Option<(String, crate::PendingAction)> {
    state
        .pending
        .iter()
        .filter(|(_, p)| p.causation_id == causation)
        .min_by_key(|(k, p)| (p.action.customer_facing(), (*k).clone()))
        .map(|(k, p)| (k.clone(), p.clone()))
}
