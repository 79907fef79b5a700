//! Raw RFC 5322/MIME email → envelope, with `mail-parser`.
//!
//! Thread → conversation: the root of `References`, else `In-Reply-To`,
//! else the message's own `Message-ID`, else a hash of its content.
//! `conversation_id` = `email:<hash of thread root>`; `event_id` =
//! `evt:email:<same hash>:<hash of Message-ID, or of the content>`.
//! Text prefers `text/plain`, else HTML reduced to text. Attachments are
//! metadata only. Any charset, any damage: an error, never a panic.
use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};

use crate::config::NormalizeConfig;
use crate::error::NormalizeError;
use crate::ids::{ConversationId, EventId, short_hash};
use crate::limits::{cap, cap_keeping_first_and_last};
use crate::model::{
    Attachment, AttachmentKind, Channel, Customer, EmailInfo, Envelope, Message, Meta,
    RichpanelInfo, SCHEMA_VERSION, SourceKind,
};
use crate::text::{normalize_ws, truncate};

/// Normalizes one raw email (`meta.source = email_raw`).
pub fn normalize_email_bytes(
    raw: &[u8],
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
) -> Result<Envelope, NormalizeError> {
    normalize_email_as(raw, cfg, received_at, SourceKind::EmailRaw)
}

/// Same as [`normalize_email_bytes`] with the given `meta.source`.
pub(crate) fn normalize_email_as(
    raw: &[u8],
    cfg: &NormalizeConfig,
    received_at: DateTime<Utc>,
    source: SourceKind,
) -> Result<Envelope, NormalizeError> {
    let parsed = parse(raw, cfg)?;
    let thread = short_hash(parsed.thread_root.as_bytes());
    Ok(Envelope {
        schema_version: SCHEMA_VERSION,
        event_id: EventId::new(format!("evt:email:{thread}:{}", parsed.message_hash)),
        received_at,
        conversation_id: ConversationId::new(format!("email:{thread}")),
        channel: Channel::Email,
        customer: Customer {
            email: parsed.from_address,
            phone: None,
            id: None,
        },
        message: parsed.message,
        richpanel: RichpanelInfo::default(),
        email: parsed.email,
        meta: Meta {
            attempt: 0,
            source,
            recovery: None,
        },
        blob: None,
    })
}

impl Envelope {
    /// Fills an envelope whose email body was not inline (SES S3 action:
    /// `blob` is set) from the raw email fetched from the blob store. Keeps
    /// the identity (`event_id`, `conversation_id`), `received_at`, `meta`
    /// and `blob`; replaces customer, message and email fields.
    pub fn with_email_body(
        mut self,
        raw: &[u8],
        cfg: &NormalizeConfig,
    ) -> Result<Envelope, NormalizeError> {
        let parsed = parse(raw, cfg)?;
        self.customer = Customer {
            email: parsed.from_address,
            phone: None,
            id: None,
        };
        self.message = parsed.message;
        self.email = parsed.email;
        Ok(self)
    }
}

struct Parsed {
    email: EmailInfo,
    message: Message,
    from_address: Option<String>,
    thread_root: String,
    message_hash: String,
}

fn parse(raw: &[u8], cfg: &NormalizeConfig) -> Result<Parsed, NormalizeError> {
    let msg = parse_message(raw)?;
    let message_id = msg.message_id().map(clean_id).filter(|s| !s.is_empty());
    let from_address = msg.from().and_then(first_address);
    let subject = msg.subject().map(str::to_owned);
    let date = msg
        .date()
        .filter(|d| d.is_valid())
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));
    let to = msg.to().map(addresses).unwrap_or_default();
    let cc = msg.cc().map(addresses).unwrap_or_default();
    let in_reply_to = id_list(msg.in_reply_to()).into_iter().next();
    let references = id_list(msg.references());
    let full_text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();

    let content_hash = || {
        let seed = format!(
            "{}|{}|{}|{}|{}",
            from_address.as_deref().unwrap_or(""),
            to.join(","),
            subject.as_deref().unwrap_or(""),
            date.map(|d| d.timestamp()).unwrap_or(0),
            normalize_ws(&full_text),
        );
        short_hash(seed.as_bytes())
    };
    let message_hash = match &message_id {
        Some(id) => short_hash(id.as_bytes()),
        None => content_hash(),
    };
    let thread_root = references
        .first()
        .or(in_reply_to.as_ref())
        .or(message_id.as_ref())
        .cloned()
        .unwrap_or_else(|| format!("content:{}", content_hash()));

    let attachments = msg.attachments().map(attachment).collect();
    let cut = truncate(full_text.trim(), cfg.max_text_chars);
    // Ids are derived above from the full lists; the envelope keeps capped ones.
    Ok(Parsed {
        message: Message {
            id: message_id.clone(),
            created_at: date,
            text: cut.text,
            truncated: cut.truncated,
            original_length: cut.original_length,
            attachments: cap(attachments),
        },
        email: EmailInfo {
            message_id,
            from: from_address.clone(),
            to: cap(to),
            cc: cap(cc),
            subject,
            in_reply_to,
            references: cap_keeping_first_and_last(references),
        },
        from_address,
        thread_root,
        message_hash,
    })
}

/// Parse `raw`, refusing what is not an email: blank input, or input
/// without a single header field.
fn parse_message(raw: &[u8]) -> Result<mail_parser::Message<'_>, NormalizeError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(NormalizeError::InvalidEmail("empty message".into()));
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| NormalizeError::InvalidEmail("not an RFC 5322 message".into()))?;
    // mail-parser reads any first line as a header name; a real field name
    // has no whitespace.
    let has_header = msg.headers().iter().any(|h| {
        let name = h.name();
        !name.is_empty() && !name.contains(|c: char| c.is_whitespace())
    });
    if !has_header {
        return Err(NormalizeError::InvalidEmail("no header found".into()));
    }
    Ok(msg)
}

/// An attachment's metadata (the content itself is not kept).
fn attachment(part: &mail_parser::MessagePart<'_>) -> Attachment {
    let ct = part.content_type().map(|ct| match ct.subtype() {
        Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
        None => ct.ctype().to_ascii_lowercase(),
    });
    let name = part.attachment_name().map(str::to_owned);
    Attachment {
        kind: AttachmentKind::classify(ct.as_deref(), name.as_deref()),
        url: None,
        size_bytes: Some(part.len() as u64),
        name,
        content_type: ct,
    }
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_owned()
}

fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .map(clean_id)
        .filter(|s| !s.is_empty())
        .collect()
}

fn first_address(addr: &Address<'_>) -> Option<String> {
    addr.iter().find_map(address_of)
}

fn addresses(addr: &Address<'_>) -> Vec<String> {
    addr.iter().filter_map(address_of).collect()
}

/// The trimmed address of one mailbox, unless blank.
fn address_of(a: &mail_parser::Addr<'_>) -> Option<String> {
    a.address
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
