//! Perform one action through the downstream safety stack and turn what
//! happened into events (DESIGN §5: every suppression or failure is an
//! event, so an operator can see why nothing happened).
use std::time::Duration;

use downstream::{CallContext, CallError, TicketReply, TicketUpdate, WriteOutcome};
use projections::{Action, EventBody, SuppressReason};
use tracing::{info, warn};

use crate::Worker;
use crate::process::{Disposition, replied_tags_action};
use crate::rules::Rules;
use crate::stream::Stream;

/// The result of one attempt.
#[derive(Debug)]
pub enum ActOutcome {
    Completed {
        status: u16,
    },
    Shadowed {
        request: serde_json::Value,
    },
    Suppressed {
        reason: SuppressReason,
        detail: String,
    },
    /// Not performed, and provably nothing was sent: retry later.
    RetryLater {
        error: String,
        after: Option<Duration>,
    },
    /// Failed for good (4xx): never retried.
    Failed {
        error: String,
    },
    /// May or may not have happened (timeout, 5xx, connection dropped).
    Ambiguous {
        error: String,
        after: Option<Duration>,
    },
}

pub async fn perform(worker: &Worker, stream: &Stream, key: &str, action: &Action) -> ActOutcome {
    let ctx = CallContext {
        idempotency_key: key.to_owned(),
        channel: stream.state.channel.clone(),
        template: match action {
            Action::AutoReply { template, .. } => Some(template.clone()),
            Action::AddTags { .. } => None,
        },
        customer_facing: action.customer_facing(),
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
            ActOutcome::Completed { status }
        }
        Ok(WriteOutcome::Shadowed { request }) => ActOutcome::Shadowed {
            request: serde_json::to_value(&request).unwrap_or_default(),
        },
        Err(e) => classify_error(e),
    };
    metrics::counter!("worker_actions_total", "action" => action.name(), "outcome" => outcome.label())
        .increment(1);
    outcome
}

fn classify_error(e: CallError) -> ActOutcome {
    let detail = e.to_string();
    if let CallError::RateLimited { retry_after } = &e {
        return ActOutcome::RetryLater {
            error: detail,
            after: *retry_after,
        };
    }
    if let Some(reason) = e.suppression_reason() {
        let reason = match reason {
            "kill_switch" => SuppressReason::KillSwitch,
            "shadow" => SuppressReason::Shadow,
            "paused" => SuppressReason::Paused,
            "channel_disabled" => SuppressReason::ChannelDisabled,
            "template_disabled" => SuppressReason::TemplateDisabled,
            "safe_mode" => SuppressReason::SafeMode,
            "breaker_open" => SuppressReason::BreakerOpen,
            _ => SuppressReason::Guardrail,
        };
        return ActOutcome::Suppressed { reason, detail };
    }
    if e.is_retryable() {
        let after = None;
        // 429 is a refusal: nothing happened. Anything else retryable
        // (timeout, 5xx, transport) may have taken effect.
        if matches!(e, CallError::Http { status: 429, .. }) {
            return ActOutcome::RetryLater {
                error: detail,
                after,
            };
        }
        return ActOutcome::Ambiguous {
            error: detail,
            after,
        };
    }
    ActOutcome::Failed { error: detail }
}

impl ActOutcome {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            ActOutcome::Completed { .. } => "completed",
            ActOutcome::Shadowed { .. } => "shadowed",
            ActOutcome::Suppressed { reason, .. } => reason.as_str(),
            ActOutcome::RetryLater { .. } => "retry_later",
            ActOutcome::Failed { .. } => "failed",
            ActOutcome::Ambiguous { .. } => "unknown_outcome",
        }
    }

    /// The events recording this outcome, and whether processing of the
    /// message stops here.
    pub fn into_events(
        self,
        key: &str,
        action: &Action,
        rules: &Rules,
        stream: &Stream,
    ) -> (Vec<(Option<String>, EventBody)>, Option<Disposition>) {
        let key = key.to_owned();
        match self {
            ActOutcome::Completed { status } => {
                let mut bodies = vec![(
                    None,
                    EventBody::ActionCompleted {
                        key: key.clone(),
                        status: Some(status),
                    },
                )];
                if let Some(follow_up) = replied_tags_action(rules, action) {
                    bodies.push((
                        None,
                        EventBody::ActionRequested {
                            key: format!("{key}:tag"),
                            action: follow_up,
                        },
                    ));
                }
                (bodies, None)
            }
            ActOutcome::Shadowed { request } => (
                vec![(
                    None,
                    EventBody::ActionSuppressed {
                        key,
                        reason: SuppressReason::Shadow,
                        detail: "shadow mode: built and recorded, not sent".into(),
                        would_send: Some(request),
                    },
                )],
                None,
            ),
            ActOutcome::Suppressed { reason, detail } => {
                warn!(
                    action = action.name(),
                    reason = reason.as_str(),
                    "action suppressed"
                );
                let mut bodies = vec![(
                    None,
                    EventBody::ActionSuppressed {
                        key,
                        reason,
                        detail: detail.clone(),
                        would_send: None,
                    },
                )];
                // An open breaker means the automation is not working:
                // fall back to human routing.
                if reason == SuppressReason::BreakerOpen {
                    bodies.push((
                        None,
                        EventBody::HandedToHuman {
                            reason: format!("downstream unavailable: {detail}"),
                        },
                    ));
                }
                (bodies, None)
            }
            ActOutcome::RetryLater { error, after } => (
                vec![(
                    None,
                    EventBody::ActionFailed {
                        key,
                        error: error.clone(),
                        retryable: true,
                    },
                )],
                Some(Disposition::Retry {
                    after,
                    reason: error,
                }),
            ),
            ActOutcome::Ambiguous { error, after } if action.idempotent() => (
                vec![(
                    None,
                    EventBody::ActionFailed {
                        key,
                        error: error.clone(),
                        retryable: true,
                    },
                )],
                Some(Disposition::Retry {
                    after,
                    reason: error,
                }),
            ),
            ActOutcome::Ambiguous { error, .. } => (
                vec![
                    (None, EventBody::ActionOutcomeUnknown { key }),
                    (
                        None,
                        EventBody::HandedToHuman {
                            reason: format!(
                                "{} may or may not have been sent ({error}): check the ticket",
                                action.name()
                            ),
                        },
                    ),
                ],
                None,
            ),
            ActOutcome::Failed { error } => {
                let mut bodies = vec![(
                    None,
                    EventBody::ActionFailed {
                        key,
                        error: error.clone(),
                        retryable: false,
                    },
                )];
                if action.customer_facing() || stream.state.fallbacks == 0 {
                    bodies.push((
                        None,
                        EventBody::HandedToHuman {
                            reason: format!("{} failed: {error}", action.name()),
                        },
                    ));
                }
                (bodies, None)
            }
        }
    }
}
