//! Richpanel HTTP target bodies → envelope.
//!
//! Tenants write their own JSON template, so every field is looked up under
//! its configured aliases ([`NormalizeConfig::richpanel_aliases`]). Three
//! passes, strictest first: strict JSON; [`crate::json_repair`] for bodies
//! whose text was not escaped; then a tolerant extractor that only needs the
//! ticket id (the worker fetches the rest from the API).
//!
//! Event ids (ticket and message id parts bounded by [`bounded_id`]):
//! - message id and text: `evt:rp:<ticket>:<message id>`;
//! - text and `created_at` but no message id: `evt:rp:<ticket>:<hash of
//!   normalized text + created_at bucket>` (a retry carries the same
//!   `created_at`);
//! - a minimal body (no message id, no text) means "this ticket has news":
//!   `evt:rp:<ticket>:news:<received_at bucket start>`, so rules firing
//!   together collapse into one event; the worker takes the messages it has
//!   not seen from the ticket's own message list.
//!
//! Two bodies are made minimal on purpose, because the message they carry
//! could not be told apart from the next one by its own data:
//! - a message id without text (a body broken past repair, or a template
//!   without the text): claiming the id with an empty text would record the
//!   message empty and mark it seen, so it would never be fetched. The id
//!   still names the event, `evt:rp:<ticket>:fetch:<message id>`, stable
//!   across retries, and the message is left to the ticket fetch;
//! - text with neither a message id nor `created_at`: the only time is the
//!   delivery's, and a retry has another one (any bucket boundary can fall
//!   between two deliveries), so the text is left out and the event is the
//!   ticket's news. A retry across a boundary is at most another news event,
//!   for which the worker finds nothing new.
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::NormalizeConfig;
use crate::error::NormalizeError;
use crate::ids::{ConversationId, EventId, bounded_id, short_hash};
use crate::limits::cap;
use crate::model::{
    Channel, Customer, EmailInfo, Envelope, Message, Meta, Recovery, RichpanelInfo, SCHEMA_VERSION,
    SourceKind,
};
use crate::text::{normalize_ws, truncate};

const SOURCE: &str = "richpanel";

/// Normalizes one Richpanel HTTP target body.
pub fn normalize_richpanel(
    body: &[u8],
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
) -> Result<Envelope, NormalizeError> {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(NormalizeError::EmptyBody {
            source_name: SOURCE,
        });
    }
    let strict_err = match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => return from_value(&value, cfg, received_at, None),
        Err(e) => e,
    };
    let repaired = crate::json_repair::repair(trimmed);
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(&repaired) {
        return from_value(&value, cfg, received_at, Some(Recovery::RepairedJson));
    }
    let Some(ticket_id) = extract_raw(trimmed, &cfg.aliases("ticket_id")) else {
        return Err(NormalizeError::InvalidJson {
            source_name: SOURCE,
            detail: format!(
                "{strict_err}; no ticket id recoverable (looked for {})",
                cfg.aliases("ticket_id").join(", ")
            ),
        });
    };
    let fields = Fields {
        ticket_id,
        message_id: extract_raw(trimmed, &cfg.aliases("message_id")),
        ..Fields::default()
    };
    Ok(build(
        fields,
        cfg,
        received_at,
        Some(Recovery::TicketIdOnly),
    ))
}

#[derive(Debug, Default)]
struct Fields {
    ticket_id: String,
    ticket_url: Option<String>,
    trigger: Option<String>,
    message_id: Option<String>,
    text: Option<String>,
    channel: Option<String>,
    customer_email: Option<String>,
    customer_phone: Option<String>,
    customer_id: Option<String>,
    created_at: Option<DateTime<Utc>>,
    tags: Vec<String>,
    assignee_id: Option<String>,
}

fn from_value(
    value: &Value,
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
    recovery: Option<Recovery>,
) -> Result<Envelope, NormalizeError> {
    if !value.is_object() {
        return Err(NormalizeError::NotAnObject {
            source_name: SOURCE,
            found: json_kind(value),
        });
    }
    let get = |name: &str| lookup(value, cfg.alias_keys(name));
    let string = |name: &str| get(name).and_then(scalar_string);
    let Some(ticket_id) = string("ticket_id") else {
        let mut looked: Vec<&str> = cfg.aliases("ticket_id");
        looked.dedup();
        return Err(NormalizeError::MissingTicketId {
            looked_for: looked.join(", "),
        });
    };
    let fields = Fields {
        ticket_id,
        ticket_url: string("ticket_url"),
        trigger: string("trigger"),
        message_id: string("message_id"),
        text: get("message")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned),
        channel: string("channel"),
        customer_email: string("customer_email"),
        customer_phone: string("customer_phone"),
        customer_id: string("customer_id"),
        created_at: get("created_at").and_then(parse_time),
        tags: get("tags").map(tags).unwrap_or_default(),
        assignee_id: string("assignee_id"),
    };
    Ok(build(fields, cfg, received_at, recovery))
}

fn build(
    f: Fields,
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
    recovery: Option<Recovery>,
) -> Envelope {
    let conv = bounded_id(&f.ticket_id);
    // Which message the body claims (see the module doc for the two cases
    // left to the ticket fetch).
    let news = || format!("news:{}", bucket(received_at, cfg.time_bucket_secs));
    let (message_id, text, suffix) = match (f.message_id, f.text) {
        (Some(mid), Some(text)) => {
            let suffix = bounded_id(&mid);
            (Some(mid), Some(text), suffix)
        }
        (Some(mid), None) => (None, None, format!("fetch:{}", bounded_id(&mid))),
        (None, Some(text)) => match f.created_at {
            Some(at) => {
                let seed = format!(
                    "{}|{}",
                    normalize_ws(&text),
                    bucket(at, cfg.time_bucket_secs)
                );
                (None, Some(text), short_hash(seed.as_bytes()))
            }
            None => (None, None, news()),
        },
        (None, None) => (None, None, news()),
    };
    let cut = truncate(text.as_deref().unwrap_or(""), cfg.max_text_chars);
    Envelope {
        schema_version: SCHEMA_VERSION,
        event_id: EventId::new(format!("evt:rp:{conv}:{suffix}")),
        received_at,
        conversation_id: ConversationId::new(conv),
        channel: f
            .channel
            .as_deref()
            .map(Channel::from_name)
            .unwrap_or_default(),
        customer: Customer {
            email: f.customer_email,
            phone: f.customer_phone,
            id: f.customer_id,
        },
        message: Message {
            id: message_id,
            created_at: f.created_at,
            text: cut.text,
            truncated: cut.truncated,
            original_length: cut.original_length,
            attachments: Vec::new(),
        },
        richpanel: RichpanelInfo {
            tags: cap(f.tags),
            assignee_id: f.assignee_id,
            ticket_id: Some(f.ticket_id),
            ticket_url: f.ticket_url,
            trigger: f.trigger,
        },
        email: EmailInfo::default(),
        meta: Meta {
            attempt: 0,
            source: SourceKind::RichpanelHttpTarget,
            recovery,
        },
        blob: None,
    }
}

/// Start (unix seconds) of the `secs`-wide bucket holding `t`.
pub(crate) fn bucket(t: DateTime<Utc>, secs: u32) -> i64 {
    let s = i64::from(secs.max(1));
    t.timestamp().div_euclid(s) * s
}

/// First non-null value under any of `keys` (a key may be a dotted path).
fn lookup<'a, 'k>(root: &'a Value, mut keys: impl Iterator<Item = &'k str>) -> Option<&'a Value> {
    keys.find_map(|key| {
        let direct = root.get(key).filter(|v| !v.is_null());
        direct.or_else(|| {
            if !key.contains('.') {
                return None;
            }
            key.split('.')
                .try_fold(root, |v, part| v.get(part))
                .filter(|v| !v.is_null())
        })
    })
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn tags(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(scalar_string).collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => {
            let n = n.as_i64()?;
            // Milliseconds when too large to be seconds in this millennium.
            if n.abs() >= 100_000_000_000 {
                DateTime::from_timestamp_millis(n)
            } else {
                DateTime::from_timestamp(n, 0)
            }
        }
        _ => None,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Tolerant extraction from a body that is not JSON even after repair:
/// `"<key>": "<value>"` (value up to 256 bytes on one line) or
/// `"<key>": <digits>`, for the last segment of each alias.
fn extract_raw(body: &str, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| {
        let name = key.rsplit('.').next().unwrap_or(key);
        let needle = format!("\"{name}\"");
        body.match_indices(&needle)
            .find_map(|(at, _)| value_after(&body[at + needle.len()..]))
    })
}

fn value_after(rest: &str) -> Option<String> {
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find(['"', '\r', '\n'])?;
        &quoted[..end]
    } else {
        let end = rest
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
            .map_or(rest.len(), |(i, _)| i);
        &rest[..end]
    };
    let value = value.trim();
    (!value.is_empty() && value != "-" && value.len() <= 256).then(|| value.to_owned())
}
