//! Typed clients. Each builds a [`StackRequest`], sends it through its
//! downstream's safety stack and decodes the answer.
mod openai;
mod richpanel;
mod shopify;

pub use openai::{Classification, OpenAi};
pub use richpanel::{Comment, Richpanel, Ticket, TicketReply, TicketUpdate, Via};
pub use shopify::{Fulfillment, Order, Shopify};

use std::sync::Arc;

use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::{Bucket, CallContext, CallError, Clients, Downstream, Method, Reply, StackRequest};

/// `base` + path segments (each percent-encoded).
pub(crate) fn url(base: &str, segments: &[&str]) -> Result<Url, CallError> {
    let mut url = Url::parse(base).map_err(|_| not_configured(base))?;
    url.path_segments_mut()
        .map_err(|_| not_configured(base))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn not_configured(base: &str) -> CallError {
    let shown = if base.is_empty() {
        "(empty)"
    } else {
        "(unparsable)"
    };
    CallError::Decode(format!("base URL {shown} is not configured correctly"))
}

pub(crate) struct Call<'a> {
    pub ds: &'a Clients,
    pub downstream: Downstream,
    pub bucket: Bucket,
}

impl Call<'_> {
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
        write: bool,
        optional: bool,
        ctx: Option<CallContext>,
    ) -> Result<Reply, CallError> {
        let req = StackRequest {
            downstream: self.downstream,
            bucket: self.bucket,
            method,
            url: url.to_string(),
            body: body.map(Arc::new),
            write,
            optional,
            ctx,
            auth: self.ds.auth(self.downstream).await,
        };
        self.ds.call(req).await
    }
}

/// A decode error that names where decoding failed but never echoes the
/// payload (serde's messages quote values, which may be customer data).
pub(crate) fn decode_error(what: &str, e: &serde_json::Error) -> CallError {
    CallError::Decode(format!(
        "{what}: {:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    ))
}

/// Decode a 2xx JSON body.
pub(crate) fn decode<T: DeserializeOwned>(reply: Reply) -> Result<T, CallError> {
    match reply {
        Reply::Sent(h) => serde_json::from_slice(&h.body).map_err(|e| decode_error("body", &e)),
        Reply::Shadowed(_) => Err(CallError::Decode("a read was shadowed".into())),
    }
}

/// Ids arrive as strings or numbers depending on the API.
pub(crate) mod id {
    use serde::{Deserialize, Deserializer};

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Id {
            S(String),
            N(serde_json::Number),
        }
        Ok(match Id::deserialize(d)? {
            Id::S(s) => s,
            Id::N(n) => n.to_string(),
        })
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(deserialize_with = "string")] String);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_do_not_echo_payload_values() {
        let e = serde_json::from_str::<u64>("\"jane@example.com\"").expect_err("type error");
        let msg = decode_error("body", &e).to_string();
        assert!(!msg.contains("jane"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn ticket_shape_from_fields_md() {
        let v = serde_json::json!({"ticket": {"id": 123, "tags": ["a"], "via": {},
            "comments": [{"id": "c1", "plain_body": "hi", "isOperator": true, "via": {"channel": "email"},
                          "type": "EmailComment", "unknown": 1}]}});
        let t: Ticket = serde_json::from_value(v["ticket"].clone()).expect("decodes");
        assert_eq!(t.id, "123");
        assert!(t.comments[0].is_operator);
        assert_eq!(t.comments[0].via.channel.as_deref(), Some("email"));
    }

    #[test]
    fn ids_are_path_encoded() {
        let u = url("http://h:1/", &["v1", "tickets", "a/b c"]).expect("url");
        assert_eq!(u.as_str(), "http://h:1/v1/tickets/a%2Fb%20c");
        assert!(matches!(url("", &["x"]), Err(CallError::Decode(_))));
    }
}
