//! Perform one action through the downstream safety stack and say what it
//! came to as a domain [`Outcome`] — the one place a downstream's answer
//! ([`CallError`]) is interpreted. The events that record it are the
//! aggregate's business (`conversation::outcome_events`).
use conversation::{Action, Conversation, Outcome, SuppressReason};
use downstream::{CallContext, CallError, TicketReply, TicketUpdate, WriteOutcome};
use tracing::{info, warn};

use crate::Worker;

/// Perform `action` (idempotency key `key`) on Richpanel; `shadow`: decided
/// in shadow mode, so shadowed whatever the flags say by now.
pub(crate) async fn perform(
    worker: &Worker,
    state: &Conversation,
    key: &str,
    action: &Action,
    shadow: bool,
) -> Outcome {
    let ctx = CallContext {
        idempotency_key: key.to_owned(),
        channel: state.channel.clone(),
        template: match action {
            Action::AutoReply { template, .. } => Some(template.clone()),
            Action::AddTags { .. } => None,
        },
        customer_facing: action.customer_facing(),
        shadow,
    };
    let rp = worker.downstreams.richpanel();
    let result = match action {
        Action::AddTags { ticket_id, tags } => rp.add_tags(ticket_id, tags, &ctx).await,
        Action::AutoReply {
            ticket_id, body, ..
        } => {
            let update = TicketUpdate {
                comment: Some(TicketReply {
                    body: body.clone(),
                    public: true,
                }),
                ..TicketUpdate::default()
            };
            rp.update_ticket(ticket_id, &update, &ctx).await
        }
    };
    let outcome = match result {
        Ok(WriteOutcome::Sent { status }) => {
            info!(action = action.name(), status, "action completed");
            Outcome::Completed { status }
        }
        Ok(WriteOutcome::Shadowed { request }) => Outcome::Shadowed {
            request: serde_json::to_value(&request).unwrap_or_default(),
        },
        Err(e) => outcome_of(e),
    };
    if let Outcome::Suppressed { reason, .. } = &outcome {
        warn!(
            action = action.name(),
            reason = reason.as_str(),
            "action suppressed"
        );
    }
    crate::metrics::action_performed(action.name(), outcome.label());
    outcome
}

/// What a downstream's refusal or failure means for the action.
pub(crate) fn outcome_of(e: CallError) -> Outcome {
    let detail = e.to_string();
    let suppressed = |reason| Outcome::Suppressed {
        reason,
        detail: detail.clone(),
    };
    match e {
        CallError::KillSwitch { .. } => suppressed(SuppressReason::KillSwitch),
        // A pause defers: nothing was sent, the conversation waits.
        CallError::Paused { downstream } => Outcome::Held {
            downstream: downstream.as_str().to_owned(),
            detail,
        },
        CallError::ChannelDisabled { .. } => suppressed(SuppressReason::ChannelDisabled),
        CallError::TemplateDisabled { .. } => suppressed(SuppressReason::TemplateDisabled),
        CallError::SafeMode => suppressed(SuppressReason::SafeMode),
        CallError::CircuitOpen { .. } => suppressed(SuppressReason::BreakerOpen),
        // A refusal: nothing happened.
        CallError::RateLimited { retry_after } => Outcome::NotSent {
            error: detail,
            after: retry_after,
        },
        CallError::Http { status: 429, .. } => Outcome::NotSent {
            error: detail,
            after: None,
        },
        // May have taken effect.
        CallError::Timeout
        | CallError::Transport(_)
        | CallError::Http {
            retryable: true, ..
        } => Outcome::Ambiguous {
            error: detail,
            after: None,
        },
        CallError::Http {
            retryable: false, ..
        }
        | CallError::Decode(_) => Outcome::Failed { error: detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use downstream::Downstream;

    #[test]
    fn every_refusal_of_a_safety_layer_is_a_suppression_with_its_own_reason() {
        let cases = [
            (
                CallError::KillSwitch {
                    scope: "all_writes",
                },
                SuppressReason::KillSwitch,
            ),
            (
                CallError::ChannelDisabled {
                    channel: "email".into(),
                },
                SuppressReason::ChannelDisabled,
            ),
            (
                CallError::TemplateDisabled {
                    template: "t".into(),
                },
                SuppressReason::TemplateDisabled,
            ),
            (CallError::SafeMode, SuppressReason::SafeMode),
            (
                CallError::CircuitOpen {
                    downstream: Downstream::Richpanel,
                },
                SuppressReason::BreakerOpen,
            ),
        ];
        for (error, want) in cases {
            match outcome_of(error.clone()) {
                Outcome::Suppressed { reason, .. } => assert_eq!(reason, want, "{error}"),
                other => panic!("{error}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_pause_holds_the_action_rather_than_suppressing_it() {
        assert_eq!(
            outcome_of(CallError::Paused {
                downstream: Downstream::Richpanel
            }),
            Outcome::Held {
                downstream: "richpanel".into(),
                detail: "downstream richpanel is paused".into()
            }
        );
    }

    #[test]
    fn only_refusals_are_not_sent_and_only_ambiguous_failures_may_have_happened() {
        assert!(matches!(
            outcome_of(CallError::RateLimited { retry_after: None }),
            Outcome::NotSent { .. }
        ));
        assert!(matches!(
            outcome_of(CallError::from_status(429, None)),
            Outcome::NotSent { .. }
        ));
        for e in [
            CallError::Timeout,
            CallError::Transport("reset".into()),
            CallError::from_status(503, None),
        ] {
            assert!(matches!(outcome_of(e), Outcome::Ambiguous { .. }));
        }
        for e in [
            CallError::from_status(422, None),
            CallError::Decode("x".into()),
        ] {
            assert!(matches!(outcome_of(e), Outcome::Failed { .. }));
        }
    }
}
