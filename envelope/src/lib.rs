//! Envelope v1: the versioned contract every Richpanel webhook and inbound
//! email is normalized into before it is queued (`docs/architecture.md`,
//! "Envelope v1").
//!
//! ```no_run
//! use envelope::{normalize, NormalizeConfig, Normalized, Source};
//! let body = br#"{"ticket_id":"T1","ticket_url":"https://app.richpanel.com/T1","trigger":"new"}"#;
//! let out = normalize(Source::Richpanel, body, &NormalizeConfig::default(), chrono::Utc::now());
//! if let Ok(Normalized::Envelope(env)) = out {
//!     println!("{} group={} dedup={}", env.event_id, env.group_id(), env.dedup_id());
//! }
//! ```
//!
//! # Layout
//! - `model.rs` — [`Envelope`] and its parts; `group_id`, `dedup_id`, `payload_hash`.
//! - `ids.rs` — [`EventId`], [`ConversationId`], [`sqs_safe`], [`bounded_id`].
//! - `limits.rs` — [`MAX_LIST_ITEMS`], [`MAX_ENCODED_BYTES`]: what keeps an
//!   envelope storable on both backends.
//! - `version.rs` — [`decode`] (version check, v0 → v1 upcast).
//! - `config.rs` — [`NormalizeConfig`].
//! - `richpanel.rs`, `email.rs`, `ses/` — one normalizer each; `json_repair.rs`
//!   helps the Richpanel one with unescaped bodies.
//! - `text.rs` — truncation, whitespace normalization; [`redact`] — masking
//!   before logging.
//! - `error.rs` — [`NormalizeError`], [`EnvelopeError`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod canonical;
mod config;
mod email;
mod error;
mod ids;
mod json_repair;
mod limits;
mod model;
pub mod redact;
mod richpanel;
pub mod ses;
pub mod text;
mod version;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use config::{NormalizeConfig, RICHPANEL_FIELDS};
pub use email::normalize_email_bytes;
pub use error::{EnvelopeError, NormalizeError};
pub use ids::{
    ConversationId, EventId, MAX_ID_BYTES, SQS_ID_MAX, bounded_id, is_sqs_id_char, sha256_hex,
    sqs_safe,
};
pub use limits::{MAX_ENCODED_BYTES, MAX_LIST_ITEMS};
pub use model::{
    Attachment, AttachmentKind, BlobRef, Channel, Customer, EmailInfo, Envelope, Message, Meta,
    Recovery, RichpanelInfo, SCHEMA_VERSION, SourceKind,
};
pub use richpanel::normalize_richpanel;
pub use ses::{normalize_ses, normalize_verified_sns};
pub use version::{decode, upcast_v0};

/// Which normalizer to run on a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Richpanel HTTP target (tenant-written JSON).
    Richpanel,
    /// A raw RFC 5322/MIME email.
    Email,
    /// An SNS envelope / SES notification / Lambda SES or SNS event (JSON).
    Ses,
}

impl Source {
    /// Guesses the source of `body`: JSON that looks like SNS/SES is
    /// [`Source::Ses`], other JSON-ish bodies (`{...}`, even broken) are
    /// [`Source::Richpanel`], text starting with a header line is
    /// [`Source::Email`]. `None` when it is none of these.
    pub fn detect(body: &[u8]) -> Option<Source> {
        let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
        let body = &body[start..];
        let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
        if body.first() == Some(&b'{') {
            let head = String::from_utf8_lossy(&body[..body.len().min(4096)]);
            let ses_markers = [
                "\"TopicArn\"",
                "\"notificationType\"",
                "\"eventType\"",
                "\"aws:ses\"",
                "\"aws:sns\"",
            ];
            return Some(if ses_markers.iter().any(|m| head.contains(m)) {
                Source::Ses
            } else {
                Source::Richpanel
            });
        }
        let first_line = body.split(|b| *b == b'\n').next().unwrap_or_default();
        let colon = first_line.iter().position(|b| *b == b':')?;
        let name = &first_line[..colon];
        let is_header = !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic() && *b != b':')
            || first_line.starts_with(b"From ");
        is_header.then_some(Source::Email)
    }

    /// The name used on the command line (`richpanel`, `email`, `ses`).
    pub fn name(self) -> &'static str {
        match self {
            Source::Richpanel => "richpanel",
            Source::Email => "email",
            Source::Ses => "ses",
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "richpanel" => Ok(Source::Richpanel),
            "email" => Ok(Source::Email),
            "ses" | "sns" => Ok(Source::Ses),
            other => Err(format!(
                "unknown source {other:?} (expected richpanel, email or ses)"
            )),
        }
    }
}

/// What a body became.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Unboxed on purpose: one value per request, and callers match on
// `Normalized::Envelope(env)` directly.
#[allow(clippy::large_enum_variant)]
pub enum Normalized {
    /// An event to record: idempotency check, then queue.
    Envelope(Envelope),
    /// SNS asks to confirm a subscription: the ingress GETs `subscribe_url`
    /// (after verifying the signature). Nothing is queued.
    SnsSubscriptionConfirmation {
        /// The topic to subscribe to.
        topic_arn: String,
        /// The URL that confirms the subscription when fetched.
        subscribe_url: String,
        /// The confirmation token SNS sent.
        token: String,
    },
    /// SNS confirms an unsubscribe. Nothing to do but acknowledge.
    SnsUnsubscribeConfirmation {
        /// The topic unsubscribed from.
        topic_arn: String,
    },
    /// Valid input that carries no inbound message (e.g. an SES Bounce
    /// notification). Acknowledge, record nothing.
    Ignored {
        /// Why nothing is recorded.
        reason: String,
    },
}

/// Normalizes one body of the given source. Never panics; every failure is
/// a [`NormalizeError`] naming what is wrong.
pub fn normalize(
    source: Source,
    body: &[u8],
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
) -> Result<Normalized, NormalizeError> {
    match source {
        Source::Richpanel => normalize_richpanel(body, cfg, received_at).map(Normalized::Envelope),
        Source::Email => normalize_email_bytes(body, cfg, received_at).map(Normalized::Envelope),
        Source::Ses => normalize_ses(body, cfg, received_at),
    }
}
