//! SES receipt notifications → envelope.
//!
//! Accepted shapes (all JSON):
//! - the SNS HTTP envelope ([`SnsMessage`]): `SubscriptionConfirmation` and
//!   `UnsubscribeConfirmation` become [`Normalized`] variants the ingress
//!   acts on; a `Notification` wraps an SES notification in `Message`;
//! - a bare SES notification (`notificationType`, SNS raw message delivery);
//! - the Lambda SNS event (`Records[0].Sns`) and the Lambda SES event
//!   (`Records[0].ses`, `meta.source = ses_lambda`).
//!
//! `notificationType: Received` with inline `content` (SNS action, `UTF8` or
//! `BASE64` encoding) is parsed as a full email. Without content (S3 action,
//! Lambda action) the envelope is built from the notification's header list
//! (so ids match the full email's when it has a `Message-ID`) with empty
//! text; for the S3 action `blob` points at the stored email, which the
//! worker fetches and passes to [`crate::Envelope::with_email_body`]. Other
//! notification types (Bounce, Complaint, ...) are [`Normalized::Ignored`].
mod sns;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;

pub use sns::SnsMessage;

use crate::Normalized;
use crate::config::NormalizeConfig;
use crate::email::normalize_email_as;
use crate::error::NormalizeError;
use crate::model::{BlobRef, Envelope, SourceKind};

/// Normalizes one SES/SNS JSON document.
pub fn normalize_ses(
    body: &[u8],
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
) -> Result<Normalized, NormalizeError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| NormalizeError::InvalidJson {
        source_name: "ses",
        detail: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(NormalizeError::NotAnObject {
            source_name: "ses",
            found: "not an object",
        });
    }
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        let [record] = records.as_slice() else {
            return Err(NormalizeError::RecordCount(records.len()));
        };
        if let Some(sns) = record.get("Sns") {
            return from_sns(SnsMessage::from_value(sns)?, cfg, received_at);
        }
        if let Some(ses) = record.get("ses") {
            let env = receipt_to_envelope(ses, cfg, received_at, SourceKind::SesLambda)?;
            return Ok(Normalized::Envelope(env));
        }
        return Err(NormalizeError::UnrecognizedSes);
    }
    if value.get("Type").is_some() {
        return from_sns(SnsMessage::from_value(&value)?, cfg, received_at);
    }
    if value.get("notificationType").is_some() || value.get("eventType").is_some() {
        return from_notification(&value, cfg, received_at);
    }
    Err(NormalizeError::UnrecognizedSes)
}

/// Normalizes an SNS message whose signature the caller has verified: only
/// the signed fields are read (`Message` for a `Notification`), never
/// anything else that came with it.
pub fn normalize_verified_sns(
    msg: SnsMessage,
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
) -> Result<Normalized, NormalizeError> {
    from_sns(msg, cfg, received_at)
}

fn from_sns(
    msg: SnsMessage,
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
) -> Result<Normalized, NormalizeError> {
    match msg.r#type.as_str() {
        "SubscriptionConfirmation" => Ok(Normalized::SnsSubscriptionConfirmation {
            subscribe_url: msg.subscribe_url.ok_or(NormalizeError::MissingField {
                what: "sns subscription confirmation",
                field: "SubscribeURL",
            })?,
            token: msg.token.ok_or(NormalizeError::MissingField {
                what: "sns subscription confirmation",
                field: "Token",
            })?,
            topic_arn: msg.topic_arn,
        }),
        "UnsubscribeConfirmation" => Ok(Normalized::SnsUnsubscribeConfirmation {
            topic_arn: msg.topic_arn,
        }),
        "Notification" => {
            let inner: Value = serde_json::from_str(&msg.message)
                .map_err(|e| NormalizeError::InvalidSnsMessage(e.to_string()))?;
            from_notification(&inner, cfg, received_at)
        }
        other => Err(NormalizeError::UnsupportedSnsType(other.to_owned())),
    }
}

fn from_notification(
    v: &Value,
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
) -> Result<Normalized, NormalizeError> {
    let kind = v
        .get("notificationType")
        .or_else(|| v.get("eventType"))
        .and_then(Value::as_str);
    match kind {
        Some("Received") => Ok(Normalized::Envelope(receipt_to_envelope(
            v,
            cfg,
            received_at,
            SourceKind::SesSns,
        )?)),
        Some(other) => Ok(Normalized::Ignored {
            reason: format!("ses notification type {other:?} is not Received"),
        }),
        None => Err(NormalizeError::InvalidSnsMessage(
            "no notificationType".into(),
        )),
    }
}

fn receipt_to_envelope(
    v: &Value,
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
    source: SourceKind,
) -> Result<Envelope, NormalizeError> {
    let mail = v
        .get("mail")
        .filter(|m| m.is_object())
        .ok_or(NormalizeError::MissingField {
            what: "ses notification",
            field: "mail",
        })?;
    let action = v.get("receipt").and_then(|r| r.get("action"));
    let action_str = |name: &str| action.and_then(|a| a.get(name)).and_then(Value::as_str);
    if let Some(content) = v.get("content").and_then(Value::as_str) {
        let raw = decode_content(content, action_str("encoding").unwrap_or("UTF8"))?;
        return normalize_email_as(&raw, cfg, received_at, source);
    }
    let headers = header_block(mail);
    let mut env = normalize_email_as(headers.as_bytes(), cfg, received_at, source)?;
    if action_str("type").is_some_and(|t| t.eq_ignore_ascii_case("S3")) {
        let bucket = action_str("bucketName").ok_or(NormalizeError::MissingField {
            what: "ses s3 action",
            field: "bucketName",
        })?;
        let key = match action_str("objectKey") {
            Some(key) => key.to_owned(),
            None => {
                let prefix = action_str("objectKeyPrefix").unwrap_or("");
                let id = mail.get("messageId").and_then(Value::as_str).ok_or(
                    NormalizeError::MissingField {
                        what: "ses s3 action",
                        field: "objectKey",
                    },
                )?;
                format!("{prefix}{id}")
            }
        };
        env.blob = Some(BlobRef {
            bucket: bucket.to_owned(),
            key,
        });
    }
    Ok(env)
}

fn decode_content(content: &str, encoding: &str) -> Result<Vec<u8>, NormalizeError> {
    match encoding.to_ascii_uppercase().as_str() {
        "UTF8" | "UTF-8" | "" => Ok(content.as_bytes().to_vec()),
        "BASE64" => {
            let compact: String = content
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| NormalizeError::InvalidContent(format!("invalid base64: {e}")))
        }
        other => Err(NormalizeError::InvalidContent(format!(
            "unknown encoding {other:?}"
        ))),
    }
}

/// Rebuilds an RFC 5322 header block from `mail.headers` (or, when that is
/// empty, `mail.commonHeaders`), so headers go through the same parser as a
/// full email (RFC 2047 decoding, thread ids).
fn header_block(mail: &Value) -> String {
    let mut out = String::new();
    let mut push = |name: &str, value: &str| {
        let valid_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if valid_name {
            let value: String = value
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                .collect();
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    };
    let headers = mail
        .get("headers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for h in headers {
        if let (Some(name), Some(value)) = (
            h.get("name").and_then(Value::as_str),
            h.get("value").and_then(Value::as_str),
        ) {
            push(name, value);
        }
    }
    if headers.is_empty() {
        let common = mail.get("commonHeaders");
        let list = |name: &str| {
            common
                .and_then(|c| c.get(name))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|s| !s.is_empty())
        };
        let one = |name: &str| common.and_then(|c| c.get(name)).and_then(Value::as_str);
        for (header, field) in [("From", "from"), ("To", "to"), ("Cc", "cc")] {
            if let Some(v) = list(field) {
                push(header, &v);
            }
        }
        for (header, field) in [
            ("Subject", "subject"),
            ("Message-ID", "messageId"),
            ("Date", "date"),
        ] {
            if let Some(v) = one(field) {
                push(header, v);
            }
        }
    }
    out.push_str("\r\n");
    out
}
