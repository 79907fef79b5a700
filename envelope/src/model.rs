//! The envelope v1 types (`docs/architecture.md`, "Envelope v1"), plus a
//! few additive optional fields (documented on each; absent fields decode
//! to their defaults, so a v1 reader that does not know them still reads
//! the envelope).
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::canonical::{Object, list};

use crate::ids::{ConversationId, EventId, sha256_hex, sqs_safe};

/// The schema version this crate writes.
pub const SCHEMA_VERSION: u32 = 1;

/// One normalized inbound event: a Richpanel webhook or an email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always [`SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// The event's identity, derived from its content: a redelivery gets
    /// the same id (the ingress deduplicates on it).
    pub event_id: EventId,
    /// When the ingress received it (not part of the event's identity).
    pub received_at: DateTime<Utc>,
    /// The conversation it belongs to (its event stream and queue group).
    pub conversation_id: ConversationId,
    /// Where the conversation happens.
    pub channel: Channel,
    /// Who wrote in.
    pub customer: Customer,
    /// What they wrote.
    pub message: Message,
    /// Richpanel fields (empty for email).
    pub richpanel: RichpanelInfo,
    /// Email fields (empty for Richpanel).
    pub email: EmailInfo,
    /// Delivery metadata.
    pub meta: Meta,
    /// Additive v1 field: where the raw email waits when the SES S3 action
    /// delivered only a pointer. The worker fetches it from the blob store and
    /// calls [`Envelope::with_email_body`]. Omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobRef>,
}

/// Where the conversation happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Richpanel's chat widget.
    Livechat,
    /// Email (Richpanel's email channel, or inbound mail via SES).
    Email,
    /// Facebook, Instagram, X, WhatsApp and similar.
    Social,
    /// TikTok.
    Tiktok,
    /// Also what any channel name this version does not know decodes to.
    #[default]
    #[serde(other)]
    Unknown,
}

impl Channel {
    /// Maps a Richpanel channel name (case-insensitive) to a channel.
    pub fn from_name(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "livechat" | "live_chat" | "chat" | "widget" | "messenger_widget" => Self::Livechat,
            "email" | "mail" | "gmail" | "outlook" => Self::Email,
            "social" | "facebook" | "facebook_messenger" | "messenger" | "instagram"
            | "twitter" | "x" | "whatsapp" => Self::Social,
            "tiktok" => Self::Tiktok,
            _ => Self::Unknown,
        }
    }
}

/// Who wrote in. Raw PII: never log these (use [`crate::redact`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Customer {
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// The customer's id in Richpanel.
    pub id: Option<String>,
}

/// The message itself. Text only; attachments as metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Message {
    /// The source's message id (Richpanel message id, email `Message-ID`).
    pub id: Option<String>,
    /// When it was written, if the source says.
    pub created_at: Option<DateTime<Utc>>,
    /// Plain text, cut on a character boundary at
    /// [`crate::NormalizeConfig::max_text_chars`]. Empty when the source
    /// carried none (minimal Richpanel body, SES S3/Lambda action).
    #[serde(default)]
    pub text: String,
    /// Additive v1 field: `true` when `text` was cut.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// Additive v1 field: the text's length in characters before cutting
    /// (only when `truncated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_length: Option<usize>,
    /// Attachment metadata.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// Attachment metadata. Never the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// What kind of file it is (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    /// Where the source serves it, when it does.
    pub url: Option<String>,
    /// Its size, when known.
    pub size_bytes: Option<u64>,
    /// Additive v1 field: file name when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Additive v1 field: MIME type when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// An attachment's kind, by MIME type or file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A picture (`image/*`, or a picture's extension).
    Image,
    /// A PDF document.
    Pdf,
    /// Anything else, also any kind this version does not know.
    #[serde(other)]
    Other,
}

impl AttachmentKind {
    /// Classifies by MIME type, falling back to the file extension.
    pub fn classify(content_type: Option<&str>, name: Option<&str>) -> Self {
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        let ext = name
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        if ct.starts_with("image/")
            || matches!(
                ext.as_str(),
                "png" | "jpg" | "jpeg" | "gif" | "webp" | "heic" | "bmp"
            )
        {
            Self::Image
        } else if ct == "application/pdf" || ext == "pdf" {
            Self::Pdf
        } else {
            Self::Other
        }
    }
}

/// Richpanel-specific fields (empty for email).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RichpanelInfo {
    /// The ticket's tags as sent.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The agent the ticket is assigned to, as sent.
    pub assignee_id: Option<String>,
    /// Additive v1 field: the ticket id as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// Additive v1 field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_url: Option<String>,
    /// Additive v1 field: the automation rule's trigger name. Not part of the
    /// payload hash (several rules may fire for the same news).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

/// Email-specific fields (empty for Richpanel). Message ids without `<>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmailInfo {
    /// `Message-ID`.
    pub message_id: Option<String>,
    /// The first `From` address.
    pub from: Option<String>,
    /// `To` addresses.
    #[serde(default)]
    pub to: Vec<String>,
    /// `Cc` addresses.
    #[serde(default)]
    pub cc: Vec<String>,
    /// `Subject`.
    pub subject: Option<String>,
    /// The first id of `In-Reply-To`.
    pub in_reply_to: Option<String>,
    /// `References`, thread root first (capped, keeping the first and the
    /// last ones).
    #[serde(default)]
    pub references: Vec<String>,
}

/// Delivery metadata: not part of the event's identity or payload hash.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    /// Delivery attempt (0 as normalized).
    #[serde(default)]
    pub attempt: u32,
    /// Which normalizer produced the envelope.
    pub source: SourceKind,
    /// Additive v1 field: set when the body was not valid JSON and had to be
    /// repaired or only partly recovered. Omitted for clean input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// Which normalizer produced the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A Richpanel automation's HTTP target.
    #[default]
    RichpanelHttpTarget,
    /// SES receipt notification via SNS (HTTP or the Lambda SNS event).
    SesSns,
    /// Additive v1 value: the Lambda SES event (receipt action `Lambda`/`S3`).
    SesLambda,
    /// A raw RFC 5322 message posted to the email route.
    EmailRaw,
}

/// How a malformed Richpanel body was still turned into an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// Raw control characters / unescaped quotes inside strings were escaped;
    /// every field was read.
    RepairedJson,
    /// Only the ticket id (and message id, when present, which then names
    /// the event but is not claimed as a message) could be read; the worker
    /// fetches the ticket's messages from the Richpanel API.
    TicketIdOnly,
}

/// Pointer to a raw email in the blob store (SES S3 action).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// The bucket.
    pub bucket: String,
    /// The object key in it.
    pub key: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How the canonical form writes `richpanel.tags` and `.assignee_id`.
#[derive(Clone, Copy)]
enum Labels {
    /// As empty values: the payload hash.
    Blank,
    /// As in the envelope: the legacy payload hash.
    AsSent,
}

impl Message {
    /// Canonical form, as in [`Envelope::write_identity`].
    fn write_identity<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let Message {
            id,
            created_at,
            text,
            truncated,
            original_length,
            attachments,
        } = self;
        let mut m = Object::open(out)?;
        m.with("attachments", |w| {
            list(w, attachments, |w, a| {
                let Attachment {
                    kind,
                    url,
                    size_bytes,
                    name,
                    content_type,
                } = a;
                let mut a = Object::open(w)?;
                a.present("content_type", content_type)?;
                a.present("name", name)?;
                a.field("size_bytes", size_bytes)?;
                a.field("type", kind)?;
                a.field("url", url)?;
                a.close()
            })
        })?;
        m.field("created_at", created_at)?;
        m.field("id", id)?;
        m.present("original_length", original_length)?;
        m.field("text", text)?;
        if *truncated {
            m.field("truncated", truncated)?;
        }
        m.close()
    }
}

impl Customer {
    /// Canonical form, as in [`Envelope::write_identity`].
    fn write_identity<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let Customer { email, phone, id } = self;
        let mut c = Object::open(out)?;
        c.field("email", email)?;
        c.field("id", id)?;
        c.field("phone", phone)?;
        c.close()
    }
}

impl EmailInfo {
    /// Canonical form, as in [`Envelope::write_identity`].
    fn write_identity<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let EmailInfo {
            message_id,
            from,
            to,
            cc,
            subject,
            in_reply_to,
            references,
        } = self;
        let mut e = Object::open(out)?;
        e.field("cc", cc)?;
        e.field("from", from)?;
        e.field("in_reply_to", in_reply_to)?;
        e.field("message_id", message_id)?;
        e.field("references", references)?;
        e.field("subject", subject)?;
        e.field("to", to)?;
        e.close()
    }
}

impl RichpanelInfo {
    /// Canonical form, as in [`Envelope::write_identity`], with tags and
    /// assignee as `labels` says.
    fn write_identity<W: Write>(&self, out: &mut W, labels: Labels) -> io::Result<()> {
        let RichpanelInfo {
            tags,
            assignee_id,
            ticket_id,
            ticket_url,
            trigger: _,
        } = self;
        let mut r = Object::open(out)?;
        match labels {
            Labels::Blank => {
                r.field("assignee_id", &None::<String>)?;
                r.field("tags", &[] as &[String])?;
            }
            Labels::AsSent => {
                r.field("assignee_id", assignee_id)?;
                r.field("tags", tags)?;
            }
        }
        r.present("ticket_id", ticket_id)?;
        r.present("ticket_url", ticket_url)?;
        r.close()
    }
}

impl Envelope {
    /// SQS `MessageGroupId`: the conversation, hashed when SQS would refuse it.
    pub fn group_id(&self) -> String {
        sqs_safe(self.conversation_id.as_str())
    }

    /// SQS `MessageDeduplicationId`: the event id, hashed when SQS would refuse it.
    pub fn dedup_id(&self) -> String {
        sqs_safe(self.event_id.as_str())
    }

    /// Hex sha256 over what defines the event, in canonical JSON (sorted
    /// keys, no whitespace): every field except `received_at`, `meta`,
    /// `richpanel.trigger`, `richpanel.tags` and `richpanel.assignee_id`
    /// (delivery details, and ticket labels that change between re-fires
    /// of the same message: the worker tags and assigns tickets). Same
    /// event id with a different hash means a conflicting redelivery.
    ///
    /// Tags and assignee are written as empty (`[]`, `null`) rather than
    /// left out, so the hash of an envelope without them is the one the
    /// previous definition gave.
    pub fn payload_hash(&self) -> String {
        self.hash_identity(Labels::Blank)
    }

    /// The hash as defined before tags and assignee were left out, when it
    /// differs from [`Envelope::payload_hash`] (only when tags or an
    /// assignee are present). For records written by that definition: a
    /// redelivery across the upgrade still matches. Needed while such
    /// records live (the ingress keeps them `keep_secs`, 72 h by default).
    pub fn legacy_payload_hash(&self) -> Option<String> {
        let labelled = !self.richpanel.tags.is_empty() || self.richpanel.assignee_id.is_some();
        labelled.then(|| self.hash_identity(Labels::AsSent))
    }

    fn hash_identity(&self, labels: Labels) -> String {
        let mut hasher = crate::canonical::Hashing::default();
        if self.write_identity(&mut hasher, labels).is_err() {
            // Writing into a hasher cannot fail; hash the Debug form rather
            // than panic if it ever did.
            return sha256_hex(format!("{self:?}").as_bytes());
        }
        base16ct::lower::encode_string(&sha2::Digest::finalize(hasher.0))
    }

    /// The canonical JSON the payload hash is taken over: the envelope as
    /// serde writes it, minus `received_at`, `meta` and `richpanel.trigger`,
    /// keys sorted, with tags and assignee as `labels` says. Every struct is
    /// destructured in full, so a new field does not compile until it is
    /// placed here (or knowingly left out).
    fn write_identity<W: Write>(&self, out: &mut W, labels: Labels) -> io::Result<()> {
        let Envelope {
            schema_version,
            event_id,
            received_at: _,
            conversation_id,
            channel,
            customer,
            message,
            richpanel,
            email,
            meta: _,
            blob,
        } = self;
        let mut o = Object::open(out)?;
        if let Some(BlobRef { bucket, key }) = blob {
            o.with("blob", |w| {
                let mut b = Object::open(w)?;
                b.field("bucket", bucket)?;
                b.field("key", key)?;
                b.close()
            })?;
        }
        o.field("channel", channel)?;
        o.field("conversation_id", conversation_id)?;
        o.with("customer", |w| customer.write_identity(w))?;
        o.with("email", |w| email.write_identity(w))?;
        o.field("event_id", event_id)?;
        o.with("message", |w| message.write_identity(w))?;
        o.with("richpanel", |w| richpanel.write_identity(w, labels))?;
        o.field("schema_version", schema_version)?;
        o.close()
    }

    /// Compact JSON (the wire form).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// [`Envelope::to_json`], refused when it is larger than one queue
    /// message may be ([`crate::MAX_ENCODED_BYTES`]).
    pub fn encode(&self) -> Result<String, crate::NormalizeError> {
        let json = self.to_json();
        if json.len() > crate::MAX_ENCODED_BYTES {
            return Err(crate::NormalizeError::EnvelopeTooLarge {
                bytes: json.len(),
                limit: crate::MAX_ENCODED_BYTES,
            });
        }
        Ok(json)
    }

    /// Pretty JSON (for operators).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
