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
    UnsupportedVersion { found: u32, supported: u32 },
}

/// One event in a conversation stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema_version: u32,
    /// 1-based position in the stream.
    pub seq: u64,
    /// Globally unique id (for `MessageReceived`, the envelope's event id).
    pub event_id: String,
    /// The envelope event id that caused this event.
    pub causation_id: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// The type name, as stored beside the event (`kind`).
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }

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
    Customer,
    Operator,
    Bot,
}

/// Whether a decision's actions are meant to be performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMode {
    Live,
    Shadow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentMatch {
    pub intent: String,
    pub confidence: f64,
}

/// Something the worker does to a downstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Add tags to the ticket (idempotent).
    AddTags {
        ticket_id: String,
        tags: Vec<String>,
    },
    /// Send a customer-facing reply from a template (NOT idempotent: a reply
    /// must never go out twice).
    AutoReply {
        ticket_id: String,
        template: String,
        body: String,
    },
}

impl Action {
    /// Safe to perform again with the same idempotency key.
    pub fn idempotent(&self) -> bool {
        matches!(self, Action::AddTags { .. })
    }
    pub fn customer_facing(&self) -> bool {
        matches!(self, Action::AutoReply { .. })
    }
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
    pub key: String,
    #[serde(flatten)]
    pub action: Action,
}

/// Why an action was not performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    KillSwitch,
    Shadow,
    SafeMode,
    Paused,
    BreakerOpen,
    RateLimited,
    ChannelDisabled,
    TemplateDisabled,
    Guardrail,
}

impl SuppressReason {
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

/// Terminal result of an action, as folded into the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    Completed,
    Failed,
    Suppressed,
    Unknown,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventBody {
    /// A message was accepted into the conversation.
    MessageReceived {
        message_id: Option<String>,
        channel: String,
        author: Author,
        /// Possibly truncated; the envelope records the original length.
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        /// Richpanel ticket the conversation maps to, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_at: Option<DateTime<Utc>>,
        received_at: DateTime<Utc>,
        source: String,
    },
    /// A minimal Richpanel webhook ("this ticket has news"): the worker
    /// fetched the ticket and found `new_messages` it had not seen; each
    /// follows as its own `MessageReceived`.
    TicketUpdated {
        ticket_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<String>,
        new_messages: u32,
        /// Why the ticket could not be read, when it could not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The worker decided what the message means and what to do.
    DecisionMade {
        intents: Vec<IntentMatch>,
        /// The intent that drove the decision, if any.
        intent: Option<String>,
        route: Option<String>,
        confidence: f64,
        template: Option<String>,
        mode: DecisionMode,
        /// `rules` or `model`.
        decided_by: String,
        /// Tier-0 (chargeback, fraud, legal): never automated.
        tier0: bool,
        /// Why nothing is done, when nothing is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// The actions this decision plans, in order, with their idempotency
        /// keys. Each is recorded as `ActionRequested` right before it is
        /// performed, so "requested without an outcome" means "may have
        /// happened".
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        actions: Vec<PlannedAction>,
    },
    /// An action is about to be performed (recorded before it happens).
    ActionRequested { key: String, action: Action },
    ActionCompleted {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
    ActionFailed {
        key: String,
        error: String,
        /// The failure is known to have happened before anything was sent,
        /// so performing the action again cannot duplicate it.
        retryable: bool,
    },
    ActionSuppressed {
        key: String,
        reason: SuppressReason,
        detail: String,
        /// Shadow mode: the request that would have been sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        would_send: Option<serde_json::Value>,
    },
    /// A non-idempotent action was requested but its outcome was never
    /// recorded (a crash mid-call): it may or may not have happened.
    ActionOutcomeUnknown { key: String },
    /// A human must take over: no more automated replies in this
    /// conversation until an operator hands it back.
    HandedToHuman { reason: String },
    /// An operator handed the conversation back to automation
    /// (`switchyard handback`).
    HandedBack {
        /// Who (`--by`, else `$SWITCHYARD_ACTOR` or the OS user).
        by: String,
        reason: String,
    },
}

impl EventBody {
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
