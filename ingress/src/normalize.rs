//! The one place the ingress calls the envelope crate: bytes → the
//! [`Prepared`] message the idempotency flow enqueues.
use chrono::Utc;
use envelope::ses::SnsMessage;
use envelope::{NormalizeConfig, NormalizeError};
use http::StatusCode;

use crate::error::Reject;
use crate::flow::Prepared;

/// Which normalizer a route uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Richpanel,
    Email,
    Ses,
}

impl Source {
    fn envelope(self) -> envelope::Source {
        match self {
            Source::Richpanel => envelope::Source::Richpanel,
            Source::Email => envelope::Source::Email,
            Source::Ses => envelope::Source::Ses,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Source::Richpanel => "richpanel_http_target",
            Source::Email => "email_raw",
            Source::Ses => "ses_sns",
        }
    }
}

/// What a valid body asks of the ingress.
#[derive(Debug)]
pub(crate) enum Normalized {
    /// An event to enqueue once.
    Event(Prepared),
    /// Valid input carrying no inbound message (an SES bounce...): 200.
    Ignored,
}

/// Normalize, or 400 naming what is wrong (413 for an envelope too large
/// to queue).
pub(crate) fn prepare(
    source: Source,
    body: &[u8],
    cfg: &NormalizeConfig,
) -> Result<Normalized, Reject> {
    let normalized =
        envelope::normalize(source.envelope(), body, cfg, Utc::now()).map_err(bad_input)?;
    prepared(source, normalized)
}

/// Normalize a verified SNS message (the SES route): only its signed
/// fields are read.
pub(crate) fn prepare_sns(msg: SnsMessage, cfg: &NormalizeConfig) -> Result<Normalized, Reject> {
    let normalized = envelope::normalize_verified_sns(msg, cfg, Utc::now()).map_err(bad_input)?;
    prepared(Source::Ses, normalized)
}

fn prepared(source: Source, normalized: envelope::Normalized) -> Result<Normalized, Reject> {
    let env = match normalized {
        envelope::Normalized::Envelope(env) => env,
        // Confirmations are handled (after signature checks) by the SES
        // route before normalizing; anything else carries no event.
        _ => return Ok(Normalized::Ignored),
    };
    // Over one queue message: 413 here, on every backend, rather than
    // whatever the queue would answer.
    let body = env.encode().map_err(bad_input)?;
    Ok(Normalized::Event(Prepared {
        event_id: env.event_id.as_str().to_owned(),
        conversation_id: env.conversation_id.as_str().to_owned(),
        payload_hash: env.payload_hash(),
        legacy_hash: env.legacy_payload_hash(),
        group_id: env.group_id(),
        dedup_id: env.dedup_id(),
        body,
        source: source.name(),
    }))
}

fn bad_input(e: NormalizeError) -> Reject {
    // The message names the field or format at fault; it never quotes the
    // body, so it is safe to return and to log.
    let status = match e {
        NormalizeError::EnvelopeTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    Reject::new(status, e.reason_code(), e.to_string())
}
