//! Events of a conversation stream, versioned like the envelope.
//!
//! Every event carries its sequence number in the stream, the id of the
//! envelope that caused it, a timestamp and the trace id. The body is one of
//! [`EventBody`]'s variants, encoded as JSON with a `type` tag.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version written into every event. Bump it when a body changes shape, and
/// upcast older versions in [`Event::decode`].
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The stored JSON is not an event of a known shape. Caller: report the
    /// stream as corrupt; do not skip the event.
    #[error("undecodable event: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Written by a newer switchyard. Caller: refuse to fold the stream
    /// (folding it partially would produce a wrong projection).
    #[error("event schema version {found} is newer than supported version {supported}")]
    UnsupportedVersion {
        /// The version stored.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
}

/// One event in a conversation stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event schema version it was written with.
    pub schema_version: u32,
    /// 1-based position in the stream.
    pub seq: u64,
    /// Globally unique id (for `MessageReceived`, the envelope's event id).
    pub event_id: String,
    /// The envelope event id that caused this event.
    pub causation_id: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The W3C trace id of the delivery that recorded it.
    pub trace_id: Option<String>,
    #[serde(flatten)]
    /// What happened.
    pub body: EventBody,
}

impl Event {
    /// The type name, as stored beside the event (`kind`).
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }

    /// The stored JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Decode a stored event, rejecting versions newer than this build.
    pub fn decode(json: &str) -> Result<Event, EventError> {
        #[derive(Deserialize)]
        struct Probe {
            schema_version: u32,
        }
        let probe: Probe = serde_json::from_str(json)?;
        if probe.schema_version > EVENT_SCHEMA_VERSION {
            return Err(EventError::UnsupportedVersion {
                found: probe.schema_version,
                supported: EVENT_SCHEMA_VERSION,
            });
        }
        Ok(serde_json::from_str(json)?)
    }
}

/// Who wrote a message. Only customer messages are ever acted on (loop
/// prevention: operator- and bot-authored messages are recorded only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    /// The customer (the only author ever acted on).
    Customer,
    /// A support agent.
    Operator,
    /// An automation (ours or another).
    Bot,
}

/// Whether a decision's actions are meant to be performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMode {
    /// Actions are performed.
    Live,
    /// Actions are built and recorded, never sent.
    Shadow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// An intent that matched a message, with its confidence.
pub struct IntentMatch {
    /// The intent's name in the rules file.
    pub intent: String,
    /// 0..=1.
    pub confidence: f64,
}

/// Something the worker does to a downstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Add tags to the ticket (idempotent).
    AddTags {
        /// The Richpanel ticket.
        ticket_id: String,
        /// Tags to add.
        tags: Vec<String>,
    },
    /// Send a customer-facing reply from a template (NOT idempotent: a reply
    /// must never go out twice).
    AutoReply {
        /// The Richpanel ticket.
        ticket_id: String,
        /// The template it was rendered from.
        template: String,
        /// The rendered text.
        body: String,
    },
}

impl Action {
    /// Safe to perform again with the same idempotency key.
    pub fn idempotent(&self) -> bool {
        matches!(self, Action::AddTags { .. })
    }
    /// Seen by the customer (a reply).
    pub fn customer_facing(&self) -> bool {
        matches!(self, Action::AutoReply { .. })
    }
    /// The snake_case name (logs, metric labels, `inspect`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::AddTags { .. } => "add_tags",
            Action::AutoReply { .. } => "auto_reply",
        }
    }
}

/// An action a decision plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// Idempotency key, stable across redeliveries.
    pub key: String,
    #[serde(flatten)]
    /// What to do.
    pub action: Action,
}

/// Why an action was not performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    /// The kill switch forbids the write.
    KillSwitch,
    /// Shadow mode: recorded, not sent.
    Shadow,
    /// Safe mode: route only, no customer-facing writes.
    SafeMode,
    /// The downstream is paused.
    Paused,
    /// The downstream's circuit breaker is open.
    BreakerOpen,
    /// No rate-limit token in time.
    RateLimited,
    /// The channel is switched off.
    ChannelDisabled,
    /// The template is switched off.
    TemplateDisabled,
    /// A decision guardrail.
    Guardrail,
}

impl SuppressReason {
    /// The snake_case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::KillSwitch => "kill_switch",
            SuppressReason::Shadow => "shadow",
            SuppressReason::SafeMode => "safe_mode",
            SuppressReason::Paused => "paused",
            SuppressReason::BreakerOpen => "breaker_open",
            SuppressReason::RateLimited => "rate_limited",
            SuppressReason::ChannelDisabled => "channel_disabled",
            SuppressReason::TemplateDisabled => "template_disabled",
            SuppressReason::Guardrail => "guardrail",
        }
    }
}

/// Who decided: the rules alone, or the model's classification within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The rules file's patterns.
    Rules,
    /// The OpenAI-compatible classifier, where the rules let it refine.
    Model,
}

impl DecidedBy {
    /// `rules` or `model`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Rules => "rules",
            DecidedBy::Model => "model",
        }
    }
}

/// A rule that keeps automation from acting on a message, checked by
/// [`crate::decide`] in this order; the first that holds is recorded in
/// [`Decision::guardrail`] with a note saying why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guardrail {
    /// Operator- or bot-authored: recorded, never acted on (loop prevention).
    NotFromCustomer,
    /// A tier-0 intent (chargeback, fraud, legal): routed, never replied
    /// to, handed to a human.
    Tier0,
    /// A human holds the conversation (`HandedToHuman` without a later
    /// `HandedBack`).
    HumanHold,
    /// The intent's confidence is below the rules' `min_reply_confidence`.
    LowConfidence,
    /// The template went out (or may have) in this conversation within 24 h.
    TemplateAlreadySent,
    /// The conversation had its maximum of auto-replies in 24 h.
    RepliesPer24h,
    /// The event already has its maximum number of actions.
    ActionsPerEvent,
}

impl Guardrail {
    /// The snake_case name, as stored and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Guardrail::NotFromCustomer => "not_from_customer",
            Guardrail::Tier0 => "tier0",
            Guardrail::HumanHold => "human_hold",
            Guardrail::LowConfidence => "low_confidence",
            Guardrail::TemplateAlreadySent => "template_already_sent",
            Guardrail::RepliesPer24h => "replies_per_24h",
            Guardrail::ActionsPerEvent => "actions_per_event",
        }
    }
}

/// What a message means and what to do about it: the body of
/// `DecisionMade`, made by [`crate::decide`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Every intent that matched, best first.
    pub intents: Vec<IntentMatch>,
    /// The intent that drove the decision, if any.
    pub intent: Option<String>,
    /// The route (queue) the conversation is tagged for.
    pub route: Option<String>,
    /// Confidence of `intent`, 0..=1.
    pub confidence: f64,
    /// The reply template the intent calls for, if any.
    pub template: Option<String>,
    /// Whether its actions are meant to be sent or only recorded.
    pub mode: DecisionMode,
    /// Rules or model.
    pub decided_by: DecidedBy,
    /// Tier-0 (chargeback, fraud, legal): never automated.
    pub tier0: bool,
    /// Why nothing (or less than usual) is done, when that is so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The guardrail that held back a reply, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<Guardrail>,
    /// The actions this decision plans, in order, with their idempotency
    /// keys. Each is recorded as `ActionRequested` right before it is
    /// performed, so "requested without an outcome" means "may have
    /// happened".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<PlannedAction>,
}

/// Terminal result of an action, as folded into the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Completed (2xx).
    Completed,
    /// Failed for good.
    Failed,
    /// Suppressed by a safety layer.
    Suppressed,
    /// May or may not have happened.
    Unknown,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventBody {
    /// A message was accepted into the conversation.
    MessageReceived {
        /// The source's message id (Richpanel comment id, email Message-ID).
        message_id: Option<String>,
        /// The channel it came through (`email`, `chat`…).
        channel: String,
        /// Who wrote it.
        author: Author,
        /// Possibly truncated; the envelope records the original length.
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The email subject.
        subject: Option<String>,
        /// Richpanel ticket the conversation maps to, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// When the source says it was written.
        created_at: Option<DateTime<Utc>>,
        /// When the ingress accepted it.
        received_at: DateTime<Utc>,
        /// Which ingress route (`richpanel_http_target`, `ses_sns`…).
        source: String,
    },
    /// A minimal Richpanel webhook ("this ticket has news"): the worker
    /// fetched the ticket and found `new_messages` it had not seen; each
    /// follows as its own `MessageReceived`.
    TicketUpdated {
        /// The ticket.
        ticket_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The Richpanel trigger that sent the webhook.
        trigger: Option<String>,
        /// Messages found that the conversation had not seen.
        new_messages: u32,
        /// Why the ticket could not be read, when it could not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The worker decided what the message means and what to do.
    DecisionMade(Decision),
    /// An action is about to be performed (recorded before it happens).
    ActionRequested {
        /// Its idempotency key.
        key: String,
        /// What is about to be done.
        action: Action,
    },
    /// The action was performed (2xx).
    ActionCompleted {
        /// The action's key.
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The downstream's HTTP status.
        status: Option<u16>,
    },
    /// The action failed.
    ActionFailed {
        /// The action's key.
        key: String,
        /// What went wrong.
        error: String,
        /// The failure is known to have happened before anything was sent,
        /// so performing the action again cannot duplicate it.
        retryable: bool,
    },
    /// A safety layer refused the action on purpose.
    ActionSuppressed {
        /// The action's key.
        key: String,
        /// Which layer refused.
        reason: SuppressReason,
        /// The layer's words.
        detail: String,
        /// Shadow mode: the request that would have been sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        would_send: Option<serde_json::Value>,
    },
    /// A non-idempotent action was requested but its outcome was never
    /// recorded (a crash mid-call): it may or may not have happened.
    ActionOutcomeUnknown {
        /// The action's key.
        key: String,
    },
    /// A human must take over: no more automated replies in this
    /// conversation until an operator hands it back.
    HandedToHuman {
        /// Why.
        reason: String,
    },
    /// An operator handed the conversation back to automation
    /// (`switchyard handback`).
    HandedBack {
        /// Who (`--by`, else `$SWITCHYARD_ACTOR` or the OS user).
        by: String,
        /// Why.
        reason: String,
    },
}

impl EventBody {
    /// The type name, as stored beside the event (`kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::MessageReceived { .. } => "MessageReceived",
            EventBody::TicketUpdated { .. } => "TicketUpdated",
            EventBody::DecisionMade { .. } => "DecisionMade",
            EventBody::ActionRequested { .. } => "ActionRequested",
            EventBody::ActionCompleted { .. } => "ActionCompleted",
            EventBody::ActionFailed { .. } => "ActionFailed",
            EventBody::ActionSuppressed { .. } => "ActionSuppressed",
            EventBody::ActionOutcomeUnknown { .. } => "ActionOutcomeUnknown",
            EventBody::HandedToHuman { .. } => "HandedToHuman",
            EventBody::HandedBack { .. } => "HandedBack",
        }
    }
}
