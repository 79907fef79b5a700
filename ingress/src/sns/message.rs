//! The SNS HTTP(S) delivery document and its canonical string to sign
//! (AWS "Verifying the signatures of Amazon SNS messages").
use serde::Deserialize;

/// The JSON SNS posts to an HTTP(S) subscription.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(rename = "SubscribeURL", default)]
    pub subscribe_url: Option<String>,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
}

/// The kinds of SNS delivery this endpoint handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl SnsMessage {
    pub fn kind(&self) -> Option<Kind> {
        match self.kind.as_str() {
            "Notification" => Some(Kind::Notification),
            "SubscriptionConfirmation" => Some(Kind::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(Kind::UnsubscribeConfirmation),
            _ => None,
        }
    }

    /// The canonical "key\nvalue\n" string SNS signed. `None` for an
    /// unknown type or a confirmation missing its token/URL.
    pub fn string_to_sign(&self) -> Option<String> {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind()? {
            Kind::Notification => {
                if let Some(s) = &self.subject {
                    fields.push(("Subject", s));
                }
            }
            Kind::SubscriptionConfirmation | Kind::UnsubscribeConfirmation => {
                fields.push(("SubscribeURL", self.subscribe_url.as_deref()?));
            }
        }
        fields.push(("Timestamp", &self.timestamp));
        if self.kind()? != Kind::Notification {
            fields.push(("Token", self.token.as_deref()?));
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", &self.kind));
        let mut out = String::new();
        for (k, v) in fields {
            out.push_str(k);
            out.push('\n');
            out.push_str(v);
            out.push('\n');
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_string_to_sign_orders_fields_and_skips_missing_subject() {
        let m: SnsMessage = serde_json::from_str(
            r#"{"Type":"Notification","MessageId":"m1","TopicArn":"arn:t","Message":"hi",
            "Timestamp":"2025-01-01T00:00:00.000Z","SignatureVersion":"1","Signature":"x",
            "SigningCertURL":"https://sns.us-east-1.amazonaws.com/c.pem"}"#,
        )
        .expect("parse");
        assert_eq!(
            m.string_to_sign().as_deref(),
            Some(
                "Message\nhi\nMessageId\nm1\nTimestamp\n2025-01-01T00:00:00.000Z\nTopicArn\narn:t\nType\nNotification\n"
            )
        );
    }

    #[test]
    fn confirmation_without_token_cannot_be_signed() {
        let m: SnsMessage = serde_json::from_str(
            r#"{"Type":"SubscriptionConfirmation","MessageId":"m1","TopicArn":"arn:t","Message":"hi",
            "Timestamp":"t","SignatureVersion":"1","Signature":"x","SubscribeURL":"https://x",
            "SigningCertURL":"https://sns.us-east-1.amazonaws.com/c.pem"}"#,
        )
        .expect("parse");
        assert_eq!(m.string_to_sign(), None);
    }
}
