//! Which SNS deliveries this endpoint handles. The document itself and its
//! canonical string to sign are `envelope::ses::SnsMessage` (one
//! implementation for the normalizer and the signature check).
pub use envelope::ses::SnsMessage;

/// The fields an SNS HTTP(S) delivery carries. `MessageAttributes` is sent
/// when the publisher set attributes; it is accepted and never read.
const SNS_FIELDS: &[&str] = &[
    "Type",
    "MessageId",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "SubscribeURL",
    "Token",
    "UnsubscribeURL",
    "MessageAttributes",
];

/// Why a body is not an SNS delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON object with the fields of an SNS message.
    #[error("not an SNS message: {0}")]
    Invalid(String),
    /// Anything beside the SNS fields is outside the signature: refused, so
    /// that content can only ever come from the signed `Message`.
    #[error("{0:?} is not a field of an SNS message")]
    UnexpectedField(String),
}

/// Parse an HTTP(S) delivery, refusing any field SNS does not send.
pub fn parse_delivery(body: &[u8]) -> Result<SnsMessage, ParseError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Invalid(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ParseError::Invalid("not a JSON object".into()))?;
    if let Some(extra) = obj.keys().find(|k| !SNS_FIELDS.contains(&k.as_str())) {
        let shown: String = extra.chars().take(64).collect();
        return Err(ParseError::UnexpectedField(shown));
    }
    SnsMessage::from_value(&value).map_err(|e| ParseError::Invalid(e.to_string()))
}

/// The kinds of SNS delivery this endpoint handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A published message (for SES: an inbound mail notification).
    Notification,
    /// SNS asks the endpoint to confirm a subscription.
    SubscriptionConfirmation,
    /// SNS reports that the endpoint was unsubscribed.
    UnsubscribeConfirmation,
}

/// The kind of `msg`, `None` for a type this endpoint does not handle.
pub fn kind(msg: &SnsMessage) -> Option<Kind> {
    match msg.r#type.as_str() {
        "Notification" => Some(Kind::Notification),
        "SubscriptionConfirmation" => Some(Kind::SubscriptionConfirmation),
        "UnsubscribeConfirmation" => Some(Kind::UnsubscribeConfirmation),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_outside_the_sns_document_are_refused() {
        let doc = br#"{"Type":"Notification","MessageId":"m1","TopicArn":"arn:t","Message":"hi",
            "Timestamp":"2025-01-01T00:00:00.000Z","Records":[{"ses":{}}]}"#;
        assert_eq!(
            parse_delivery(doc),
            Err(ParseError::UnexpectedField("Records".into()))
        );
        assert!(matches!(
            parse_delivery(b"[1]"),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn kinds() {
        let m = SnsMessage::parse(
            br#"{"Type":"Notification","MessageId":"m1","TopicArn":"arn:t","Message":"hi",
            "Timestamp":"2025-01-01T00:00:00.000Z","SignatureVersion":"1","Signature":"x",
            "SigningCertURL":"https://sns.us-east-1.amazonaws.com/c.pem"}"#,
        )
        .expect("parse");
        assert_eq!(kind(&m), Some(Kind::Notification));
        let mut other = m.clone();
        other.r#type = "Something".into();
        assert_eq!(kind(&other), None);
    }
}
