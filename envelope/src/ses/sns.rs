//! The SNS HTTP(S) envelope and the string AWS signs for it.
//!
//! Parse-only: the ingress verifies `Signature` (with the certificate at
//! `SigningCertURL`) over [`SnsMessage::string_to_sign`]. The Lambda SNS
//! event's `Sns` object has the same fields with `...Url` spellings, which
//! are accepted as aliases.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::NormalizeError;

/// One SNS message as POSTed to an HTTP(S) subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    pub r#type: String,
    /// SNS's id of the message.
    pub message_id: String,
    /// The topic that sent it.
    pub topic_arn: String,
    /// The publisher's subject, if any.
    #[serde(default)]
    pub subject: Option<String>,
    /// The payload (for SES: the notification JSON).
    #[serde(default)]
    pub message: String,
    /// When SNS published it (ISO 8601).
    pub timestamp: String,
    /// `1` (SHA1withRSA) or `2` (SHA256withRSA).
    #[serde(default)]
    pub signature_version: Option<String>,
    /// Base64 signature over [`SnsMessage::string_to_sign`].
    #[serde(default)]
    pub signature: Option<String>,
    /// Where the signing certificate is served.
    #[serde(rename = "SigningCertURL", alias = "SigningCertUrl", default)]
    pub signing_cert_url: Option<String>,
    /// Subscription confirmations: the URL that confirms when fetched.
    #[serde(rename = "SubscribeURL", alias = "SubscribeUrl", default)]
    pub subscribe_url: Option<String>,
    /// Subscription confirmations: the confirmation token.
    #[serde(default)]
    pub token: Option<String>,
    /// Notifications: the URL that unsubscribes the endpoint.
    #[serde(rename = "UnsubscribeURL", alias = "UnsubscribeUrl", default)]
    pub unsubscribe_url: Option<String>,
}

impl SnsMessage {
    /// Parses an SNS HTTP body.
    pub fn parse(body: &[u8]) -> Result<Self, NormalizeError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| NormalizeError::InvalidJson {
                source_name: "sns",
                detail: e.to_string(),
            })?;
        Self::from_value(&value)
    }

    /// From an already-parsed JSON value; names the first missing field.
    pub fn from_value(value: &Value) -> Result<Self, NormalizeError> {
        if !value.is_object() {
            return Err(NormalizeError::NotAnObject {
                source_name: "sns",
                found: "not an object",
            });
        }
        for field in ["Type", "MessageId", "TopicArn", "Timestamp"] {
            if !value.get(field).is_some_and(Value::is_string) {
                return Err(NormalizeError::MissingField {
                    what: "sns message",
                    field,
                });
            }
        }
        Self::deserialize(value).map_err(|e| NormalizeError::InvalidJson {
            source_name: "sns",
            detail: e.to_string(),
        })
    }

    /// The canonical string SNS signs (signature versions 1 and 2), in
    /// AWS's documented field order: for `Notification` Message, MessageId,
    /// Subject (only when present), Timestamp, TopicArn, Type; for
    /// `SubscriptionConfirmation`/`UnsubscribeConfirmation` Message,
    /// MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type. Each as
    /// `name\nvalue\n`.
    pub fn string_to_sign(&self) -> Result<String, NormalizeError> {
        let mut out = String::with_capacity(self.message.len() + 256);
        let mut push = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        match self.r#type.as_str() {
            "Notification" => {
                push("Message", &self.message);
                push("MessageId", &self.message_id);
                if let Some(subject) = &self.subject {
                    push("Subject", subject);
                }
                push("Timestamp", &self.timestamp);
                push("TopicArn", &self.topic_arn);
                push("Type", &self.r#type);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let subscribe_url =
                    self.subscribe_url
                        .as_deref()
                        .ok_or(NormalizeError::MissingField {
                            what: "sns message",
                            field: "SubscribeURL",
                        })?;
                let token = self.token.as_deref().ok_or(NormalizeError::MissingField {
                    what: "sns message",
                    field: "Token",
                })?;
                push("Message", &self.message);
                push("MessageId", &self.message_id);
                push("SubscribeURL", subscribe_url);
                push("Timestamp", &self.timestamp);
                push("Token", token);
                push("TopicArn", &self.topic_arn);
                push("Type", &self.r#type);
            }
            other => return Err(NormalizeError::UnsupportedSnsType(other.to_owned())),
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_string_to_sign_follows_aws_order() {
        let msg = SnsMessage::parse(
            br#"{"Type":"Notification","MessageId":"m1","TopicArn":"arn:t","Subject":"S",
                 "Message":"hello","Timestamp":"2025-01-01T00:00:00.000Z","SignatureVersion":"1"}"#,
        )
        .expect("parse");
        assert_eq!(
            msg.string_to_sign().expect("sts"),
            "Message\nhello\nMessageId\nm1\nSubject\nS\nTimestamp\n2025-01-01T00:00:00.000Z\nTopicArn\narn:t\nType\nNotification\n"
        );
    }

    #[test]
    fn confirmation_string_to_sign_includes_url_and_token() {
        let msg = SnsMessage::parse(
            br#"{"Type":"SubscriptionConfirmation","MessageId":"m1","TopicArn":"arn:t","Token":"tok",
                 "Message":"confirm","SubscribeURL":"https://sns/confirm","Timestamp":"T"}"#,
        )
        .expect("parse");
        assert_eq!(
            msg.string_to_sign().expect("sts"),
            "Message\nconfirm\nMessageId\nm1\nSubscribeURL\nhttps://sns/confirm\nTimestamp\nT\nToken\ntok\nTopicArn\narn:t\nType\nSubscriptionConfirmation\n"
        );
    }

    #[test]
    fn missing_topic_is_named() {
        let err = SnsMessage::parse(br#"{"Type":"Notification","MessageId":"m","Timestamp":"T"}"#)
            .expect_err("must fail");
        assert!(err.to_string().contains("TopicArn"), "{err}");
    }
}
