//! What flows through the safety stack: one [`StackRequest`] in, one
//! [`Reply`] out. Clients build requests; layers read their metadata.
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The downstream services switchyard calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Downstream {
    /// Richpanel REST (tickets, messages, tags).
    Richpanel,
    /// An OpenAI-compatible chat completions API.
    Openai,
    /// Shopify Admin REST (orders).
    Shopify,
}

impl Downstream {
    /// Every downstream.
    pub const ALL: [Downstream; 3] = [
        Downstream::Richpanel,
        Downstream::Openai,
        Downstream::Shopify,
    ];

    /// The name used in flags (`pause.<name>`), metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Downstream::Richpanel => "richpanel",
            Downstream::Openai => "openai",
            Downstream::Shopify => "shopify",
        }
    }

    /// The name of a call's trace span.
    pub fn span_name(self) -> &'static str {
        match self {
            Downstream::Richpanel => "richpanel call",
            Downstream::Openai => "openai call",
            Downstream::Shopify => "shopify call",
        }
    }
}

impl fmt::Display for Downstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Token buckets. `richpanel_read` and `richpanel_write` are separate names
/// (metrics, logs) over one shared Richpanel quota: Richpanel counts every
/// call of an API key against the same 50 per 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// Richpanel reads.
    RichpanelRead,
    /// Richpanel writes.
    RichpanelWrite,
    /// OpenAI-compatible calls.
    Openai,
    /// Shopify calls.
    Shopify,
}

impl Bucket {
    /// The bucket's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::RichpanelRead => "richpanel_read",
            Bucket::RichpanelWrite => "richpanel_write",
            Bucket::Openai => "openai",
            Bucket::Shopify => "shopify",
        }
    }
}

/// Per-call context the worker supplies with every write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// Derived from the causing event; sent as `Idempotency-Key`.
    pub idempotency_key: String,
    /// Channel of the conversation (`email`, `livechat`, ...): checked
    /// against `channel.<name>` flags.
    pub channel: Option<String>,
    /// Reply template id: checked against `template.<id>` flags.
    pub template: Option<String>,
    /// True when the write puts a message in front of the customer (a public
    /// reply): stopped by `kill-switch=auto_replies` and by safe mode.
    pub customer_facing: bool,
    /// Decided in shadow mode: the write is shadowed whatever the flags
    /// say by the time it is made, so the caller may record its request
    /// and its outcome together (nothing leaves before either is durable).
    pub shadow: bool,
}

/// A credential header. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Auth {
    /// The header's name.
    pub header: &'static str,
    /// The credential.
    pub value: String,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Auth({}: <redacted>)", self.header)
    }
}

/// HTTP method subset the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// `GET`.
    #[serde(rename = "GET")]
    Get,
    /// `POST`.
    #[serde(rename = "POST")]
    Post,
    /// `PUT`.
    #[serde(rename = "PUT")]
    Put,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// One downstream call, fully built (cheap to clone: retries resend it).
#[derive(Debug, Clone)]
pub struct StackRequest {
    /// Whom it goes to.
    pub downstream: Downstream,
    /// Which token bucket it takes from.
    pub bucket: Bucket,
    /// The HTTP method.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// The JSON body, if any.
    pub body: Option<Arc<serde_json::Value>>,
    /// Changes state downstream (a Richpanel update). Writes are what the
    /// kill switch and shadow mode stop; reads pass.
    pub write: bool,
    /// Optional enrichment (order lookups): off in safe mode.
    pub optional: bool,
    /// Present for writes.
    pub ctx: Option<CallContext>,
    /// `None` when no credential is configured: writes are then shadowed.
    pub auth: Option<Auth>,
}

impl StackRequest {
    /// What would be sent, without credentials.
    pub fn recorded(&self) -> RecordedRequest {
        RecordedRequest {
            method: self.method.as_str().to_owned(),
            url: self.url.clone(),
            body: self.body.as_deref().cloned(),
        }
    }
    /// Whether it puts a message in front of the customer (see
    /// [`CallContext::customer_facing`]).
    pub fn customer_facing(&self) -> bool {
        self.ctx.as_ref().is_some_and(|c| c.customer_facing)
    }
}

/// A request as it would have gone out (no credential headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// The JSON body, if any.
    pub body: Option<serde_json::Value>,
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: bytes::Bytes,
}

/// What the stack returns.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Sent; the downstream answered 2xx.
    Sent(HttpReply),
    /// Shadow mode: built, recorded, not sent.
    Shadowed(RecordedRequest),
}

/// Result of a write, for the worker to record.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// The downstream accepted it with this status.
    Sent {
        /// The HTTP status answered.
        status: u16,
    },
    /// Shadow mode: `request` is exactly what would have been sent.
    Shadowed {
        /// The request as built.
        request: RecordedRequest,
    },
}

impl From<Reply> for WriteOutcome {
    fn from(r: Reply) -> Self {
        match r {
            Reply::Sent(h) => WriteOutcome::Sent { status: h.status },
            Reply::Shadowed(request) => WriteOutcome::Shadowed { request },
        }
    }
}
