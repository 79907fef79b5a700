//! Which SNS deliveries this endpoint handles. The document itself and its
//! canonical string to sign are `envelope::ses::SnsMessage` (one
//! implementation for the normalizer and the signature check).
pub use envelope::ses::SnsMessage;

/// The kinds of SNS delivery this endpoint handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Notification,
    SubscriptionConfirmation,
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
