//! Decoding stored envelopes: version check and the upcasting seam.
//!
//! # Version 0 (pre-contract prototype shape)
//! Before v1 the prototype wrote a flat document, kept here so the upcasting
//! seam is real and tested:
//! ```json
//! { "schema_version": 0, "id": "evt:rp:T1:m1", "conversation": "T1",
//!   "received_at": "2025-12-21T00:00:00Z", "source": "richpanel" | "email",
//!   "text": "...", "customer_email": null, "channel": "email" }
//! ```
//! [`upcast_v0`] maps it to v1: `id` → `event_id`, `conversation` →
//! `conversation_id`, `text` → `message.text`, `customer_email` →
//! `customer.email`, `source` → `meta.source`.
use serde_json::{Value, json};

use crate::error::EnvelopeError;
use crate::model::{Envelope, SCHEMA_VERSION};

/// Decodes envelope JSON of any supported version into the current one.
/// Unknown future versions fail with [`EnvelopeError::UnsupportedVersion`].
pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let value: Value = serde_json::from_slice(bytes)?;
    let version = value
        .get("schema_version")
        .and_then(Value::as_u64)
        .ok_or(EnvelopeError::MissingVersion)?;
    let current = match version {
        0 => upcast_v0(value)?,
        v if v == u64::from(SCHEMA_VERSION) => value,
        found => {
            return Err(EnvelopeError::UnsupportedVersion {
                found,
                supported: SCHEMA_VERSION,
            });
        }
    };
    Ok(serde_json::from_value(current)?)
}

/// v0 → v1 (see the module doc for the v0 shape).
pub fn upcast_v0(v0: Value) -> Result<Value, EnvelopeError> {
    let field = |name: &'static str| {
        v0.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| EnvelopeError::Upcast {
                from: 0,
                reason: format!("missing string field {name}"),
            })
    };
    let event_id = field("id")?;
    let conversation = field("conversation")?;
    let received_at = field("received_at")?;
    let source = match v0.get("source").and_then(Value::as_str) {
        Some("email") => "email_raw",
        _ => "richpanel_http_target",
    };
    let channel = v0.get("channel").cloned().unwrap_or(Value::Null);
    let channel = if channel.is_string() {
        channel
    } else {
        json!("unknown")
    };
    Ok(json!({
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "received_at": received_at,
        "conversation_id": conversation,
        "channel": channel,
        "customer": { "email": v0.get("customer_email").cloned().unwrap_or(Value::Null),
                      "phone": null, "id": null },
        "message": { "id": null, "created_at": null,
                     "text": v0.get("text").and_then(Value::as_str).unwrap_or(""),
                     "attachments": [] },
        "richpanel": { "tags": [], "assignee_id": null },
        "email": { "message_id": null, "from": null, "to": [], "cc": [], "subject": null,
                   "in_reply_to": null, "references": [] },
        "meta": { "attempt": 0, "source": source },
    }))
}
