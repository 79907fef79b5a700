//! [`CallError`]: the one error of this crate. Each layer has its own named
//! error (`layers::*::…Error`) that converts into it, so a caller matches one
//! enum and still learns which layer said no.
use std::time::Duration;

use crate::Downstream;

/// Why a downstream call did not produce a 2xx answer.
///
/// Suppressions (the first six variants) are decisions, not failures: the
/// worker records `ActionSuppressed { reason: suppression_reason() }` and
/// moves on without retrying.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The kill switch forbids this call (`scope` is `auto_replies` or
    /// `all_writes`). Worker: record `ActionSuppressed("kill_switch")`, do
    /// not retry; the decision itself is still recorded.
    #[error("kill switch ({scope}) forbids this call")]
    KillSwitch {
        /// `auto_replies` or `all_writes`.
        scope: &'static str,
    },
    /// `pause.<downstream>` is on. Worker: record `ActionSuppressed("paused")`;
    /// hand the conversation to a human if the call was needed.
    #[error("downstream {downstream} is paused")]
    Paused {
        /// The paused downstream.
        downstream: Downstream,
    },
    /// `channel.<name>` is off. Worker: record `ActionSuppressed`, no retry.
    #[error("channel {channel} is disabled")]
    ChannelDisabled {
        /// The disabled channel.
        channel: String,
    },
    /// `template.<id>` is off. Worker: record `ActionSuppressed`, no retry.
    #[error("template {template} is disabled")]
    TemplateDisabled {
        /// The disabled template.
        template: String,
    },
    /// Safe mode: route-only (no customer-facing writes) and no optional
    /// enrichment. Worker: record `ActionSuppressed("safe_mode")`.
    #[error("safe mode: route-only, enrichment off")]
    SafeMode,
    /// The circuit breaker of this downstream is open. Worker: fall back to
    /// human routing (`HandedToHuman`), record `ActionSuppressed("breaker_open")`.
    #[error("circuit breaker for {downstream} is open")]
    CircuitOpen {
        /// The downstream whose breaker is open.
        downstream: Downstream,
    },
    /// No token within the in-memory wait bound, or a 429 whose
    /// `Retry-After` is longer than that bound (or that survived retries).
    /// Worker: retry the message later through queue visibility (at least
    /// `retry_after` when given); do not hold it in memory.
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited {
        /// How long to wait, when known.
        retry_after: Option<Duration>,
    },
    /// The call took longer than the per-call timeout (after retries).
    /// Worker: retry the message later through visibility.
    #[error("downstream call timed out")]
    Timeout,
    /// A non-2xx answer. `retryable` for 408/5xx (after the retry layer gave
    /// up): retry later through visibility; otherwise (400/401/403/404/422)
    /// a permanent failure: record `ActionFailed`, hand to a human.
    #[error("downstream answered HTTP {status}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// Whether a later retry may succeed (408, 5xx).
        retryable: bool,
    },
    /// Connection-level failure (DNS, refused, reset). Worker: retry later.
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer could not be decoded. Worker: record `ActionFailed`, hand
    /// to a human; retrying will not help.
    #[error("could not decode the downstream answer: {0}")]
    Decode(String),
}

impl CallError {
    /// The `ActionSuppressed` reason when this error is a deliberate
    /// suppression (including breaker-open and rate-limited), else `None`.
    /// "shadow" never appears here: shadowed writes succeed with
    /// `WriteOutcome::Shadowed`.
    pub fn suppression_reason(&self) -> Option<&'static str> {
        match self {
            CallError::KillSwitch { .. } => Some("kill_switch"),
            CallError::Paused { .. } => Some("paused"),
            CallError::ChannelDisabled { .. } => Some("channel_disabled"),
            CallError::TemplateDisabled { .. } => Some("template_disabled"),
            CallError::SafeMode => Some("safe_mode"),
            CallError::CircuitOpen { .. } => Some("breaker_open"),
            CallError::RateLimited { .. } => Some("rate_limited"),
            _ => None,
        }
    }

    /// One word for what went wrong (span attributes): `timeout`, `http`,
    /// `transport`, `decode`, or the suppression reason.
    pub fn failure_kind(&self) -> &'static str {
        match self {
            CallError::Timeout => "timeout",
            CallError::Http { .. } => "http",
            CallError::Transport(_) => "transport",
            CallError::Decode(_) => "decode",
            other => other.suppression_reason().unwrap_or("refused"),
        }
    }

    /// True when the same call may succeed later (429, 408, 5xx, timeout,
    /// connection errors). The worker uses it to choose between "retry the
    /// message later" and "record a failure".
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::RateLimited { .. } | CallError::Timeout | CallError::Transport(_) => true,
            CallError::Http { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether this outcome counts against the downstream's health in the
    /// circuit breaker: server errors, timeouts and connection failures do;
    /// 4xx, 429 and local suppressions do not.
    pub fn is_downstream_failure(&self) -> bool {
        match self {
            CallError::Timeout | CallError::Transport(_) => true,
            CallError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Classify an HTTP status that is not 2xx.
    pub fn from_status(status: u16, retry_after: Option<Duration>) -> Self {
        if status == 429 {
            return CallError::RateLimited { retry_after };
        }
        CallError::Http {
            status,
            retryable: status == 408 || status >= 500,
        }
    }

    /// Recover a `CallError` from a boxed error (tower-test mocks box
    /// errors); anything else becomes `Transport`.
    pub fn from_boxed(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        match e.downcast::<CallError>() {
            Ok(c) => *c,
            Err(other) => CallError::Transport(other.to_string()),
        }
    }
}
