//! The two error enums of this crate: [`NormalizeError`] (turning input into
//! an envelope) and [`EnvelopeError`] (decoding a stored envelope).
use thiserror::Error;

/// Why an input could not become an envelope. Every message names what is
/// wrong; [`NormalizeError::reason_code`] gives a short machine code for the
/// ingress's `{error, reason}` JSON. Callers answer 4xx (the input will not
/// get better by retrying) and store nothing.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// The body is empty (or only whitespace). Reject.
    #[error("{source_name} body: empty")]
    EmptyBody {
        /// The route's input (`richpanel`, `ses`...).
        source_name: &'static str,
    },
    /// Not JSON, and nothing useful could be recovered from it. Reject.
    #[error("{source_name} body: invalid JSON ({detail})")]
    InvalidJson {
        /// The route's input (`richpanel`, `ses`...).
        source_name: &'static str,
        /// The JSON parser's complaint.
        detail: String,
    },
    /// Valid JSON but not an object. Reject.
    #[error("{source_name} body: expected a JSON object, got {found}")]
    NotAnObject {
        /// The route's input (`richpanel`, `ses`...).
        source_name: &'static str,
        /// The JSON type found instead (`array`, `string`...).
        found: &'static str,
    },
    /// A Richpanel body without a usable ticket id (the one field the worker
    /// needs). Reject; the tenant's template is wrong.
    #[error("richpanel body: no ticket id found (looked for {looked_for})")]
    MissingTicketId {
        /// The field names tried.
        looked_for: String,
    },
    /// Not a parseable RFC 5322 message. Reject.
    #[error("email: {0}")]
    InvalidEmail(String),
    /// An SNS envelope whose `Type` this crate does not handle. Reject.
    #[error("sns: unsupported message type {0:?}")]
    UnsupportedSnsType(String),
    /// An SNS/SES JSON document missing a field it must have. Reject.
    #[error("{what}: missing field {field}")]
    MissingField {
        /// The document lacking it.
        what: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// An SNS `Notification` whose `Message` is not an SES JSON document. Reject.
    #[error("sns notification: Message is not SES JSON ({0})")]
    InvalidSnsMessage(String),
    /// Inline SES content that cannot be decoded (bad base64, unknown encoding). Reject.
    #[error("ses content: {0}")]
    InvalidContent(String),
    /// JSON that is neither an SNS envelope, an SES notification nor a Lambda
    /// SES/SNS event. Reject.
    #[error(
        "ses: unrecognized document (expected an SNS envelope, an SES notification or a Lambda SES/SNS event)"
    )]
    UnrecognizedSes,
    /// A Lambda event with a number of records other than one (SES and SNS
    /// invoke Lambda with exactly one). Reject.
    #[error("lambda event: expected exactly 1 record, found {0}")]
    RecordCount(usize),
    /// The normalized envelope is larger than one queue message may be
    /// ([`crate::MAX_ENCODED_BYTES`]). Reject as too large (HTTP 413): the
    /// same body will never fit.
    #[error(
        "envelope: {bytes} bytes once normalized, over the {limit}-byte limit of one queue message"
    )]
    EnvelopeTooLarge {
        /// Size of the encoded envelope.
        bytes: usize,
        /// Most bytes one queue message may hold.
        limit: usize,
    },
}

impl NormalizeError {
    /// Short, stable machine code for the ingress's `{error, reason}` body.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::EmptyBody { .. } => "empty_body",
            Self::InvalidJson { .. } => "invalid_json",
            Self::NotAnObject { .. } => "not_an_object",
            Self::MissingTicketId { .. } => "missing_ticket_id",
            Self::InvalidEmail(_) => "invalid_email",
            Self::UnsupportedSnsType(_) => "unsupported_sns_type",
            Self::MissingField { .. } => "missing_field",
            Self::InvalidSnsMessage(_) => "invalid_sns_message",
            Self::InvalidContent(_) => "invalid_content",
            Self::UnrecognizedSes => "unrecognized_ses",
            Self::RecordCount(_) => "unexpected_record_count",
            Self::EnvelopeTooLarge { .. } => "envelope_too_large",
        }
    }
}

/// Why stored envelope bytes could not be decoded. Callers treat every
/// variant as a poison message: send it to the DLQ with this message as the
/// reason, never drop it silently.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not JSON, or JSON that does not match the schema of its version.
    #[error("envelope: invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// No `schema_version` field (and not a known older shape).
    #[error("envelope: missing schema_version")]
    MissingVersion,
    /// Written by a newer switchyard. Deploy the newer version to read it;
    /// never drop it.
    #[error("envelope: schema_version {found} is newer than supported ({supported})")]
    UnsupportedVersion {
        /// The stored `schema_version`.
        found: u64,
        /// The newest version this build reads.
        supported: u32,
    },
    /// An older version that could not be upcast.
    #[error("envelope: cannot upcast schema_version {from}: {reason}")]
    Upcast {
        /// The stored `schema_version`.
        from: u64,
        /// What could not be carried over.
        reason: String,
    },
}
