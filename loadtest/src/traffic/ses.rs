//! SES traffic: receipt notifications (SNS action, inline base64 email)
//! signed by the harness's own SNS ([`crate::sns::Signer`]), and tampered
//! ones the ingress must refuse.
use base64::Engine;
use rand::Rng;
use rand::rngs::StdRng;

use super::email::email;
use super::texts::EMAIL_FIXTURES;
use super::{Generator, Kind, Request, Route};

impl Generator {
    /// A signed SES receipt notification (SNS action, inline base64
    /// content) carrying a fresh email of `conversation`. `None` (the
    /// arrival becomes a plain email) without a signer or when signing fails.
    pub(super) fn ses(&mut self, conversation: usize) -> Option<Request> {
        let text = self.text();
        let fixture = EMAIL_FIXTURES[self.rng.random_range(0..EMAIL_FIXTURES.len())];
        let raw = email(fixture, &self.run_id, conversation, self.seq, text);
        let sns_id = uuid_like(&mut self.rng);
        let signer = self.signer.as_ref()?;
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let ses_id = format!("lt{}{:012}", self.run_id, self.seq);
        let message = ses_receipt(&raw, &ses_id, conversation, &now).to_string();
        match signer.notification(
            &sns_id,
            "Amazon SES Email Receipt Notification",
            message,
            &now,
        ) {
            Ok(doc) => Some(Request {
                kind: Kind::Ses,
                route: Route::Ses,
                content_type: SNS_CONTENT_TYPE,
                body: doc.to_string().into(),
                good_token: true,
                conversation,
                duplicate: false,
            }),
            Err(e) => {
                eprintln!(
                    "loadtest: SES notification not signed ({e:#}); sending an email instead"
                );
                None
            }
        }
    }
}

/// What SNS sends HTTP subscribers.
const SNS_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

/// An SNS-style message id (UUID shape) from the run's random stream.
fn uuid_like(rng: &mut StdRng) -> String {
    let bits: u128 = rng.random();
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The SES receipt notification of the SNS action with `BASE64` encoding,
/// in the shape of the corpus's `aws-docs__sns-action-received-notification`:
/// `receipt`, `mail` (header list and common headers taken from `raw`) and
/// the whole email inline in `content`.
fn ses_receipt(raw: &str, ses_id: &str, conversation: usize, now: &str) -> serde_json::Value {
    let head = raw
        .split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .map_or(raw, |(h, _)| h);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let recipient = "support@loadtest.invalid";
    let mut common = serde_json::json!({
        "returnPath": format!("customer{conversation}@example.invalid"),
        "from": [get("From").unwrap_or_default()],
        "to": [get("To").unwrap_or_else(|| recipient.to_owned())],
        "messageId": get("Message-ID").unwrap_or_default(),
        "subject": get("Subject").unwrap_or_default(),
    });
    if let Some(date) = get("Date") {
        common["date"] = serde_json::Value::String(date);
    }
    let verdict = serde_json::json!({"status": "PASS"});
    serde_json::json!({
        "notificationType": "Received",
        "receipt": {
            "timestamp": now,
            "processingTimeMillis": 222,
            "recipients": [recipient],
            "spamVerdict": verdict,
            "virusVerdict": verdict,
            "spfVerdict": verdict,
            "dkimVerdict": verdict,
            "dmarcVerdict": verdict,
            "action": {
                "type": "SNS",
                "topicArn": crate::sns::TOPIC_ARN,
                "encoding": "BASE64",
            },
        },
        "mail": {
            "timestamp": now,
            "source": format!("customer{conversation}@example.invalid"),
            "messageId": ses_id,
            "destination": [recipient],
            "headersTruncated": false,
            "headers": headers
                .iter()
                .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
                .collect::<Vec<_>>(),
            "commonHeaders": common,
        },
        "content": base64::engine::general_purpose::STANDARD.encode(raw),
    })
}

/// A signed SNS body with its `Message` changed after signing: the
/// signature no longer matches (the ingress answers 401).
pub(super) fn tamper(body: &bytes::Bytes) -> bytes::Bytes {
    let mut doc: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(message) = doc.get("Message").and_then(|m| m.as_str()) {
        let changed = message.replacen("support@loadtest.invalid", "attacker@loadtest.invalid", 1);
        let same = changed == message;
        doc["Message"] = serde_json::Value::String(changed);
        if same {
            doc["Subject"] = serde_json::Value::String("altered".into());
        }
    }
    doc.to_string().into()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::scenario::Scenario;
    use crate::sns::Signer;
    use crate::traffic::Arrival;

    #[tokio::test]
    async fn ses_notifications_verify_and_share_the_email_thread() {
        let signer = Arc::new(Signer::start("127.0.0.1:0").await.expect("signer"));
        let scenario = Scenario {
            mix: crate::scenario::Mix {
                richpanel_minimal: 0.0,
                richpanel_rich: 0.0,
                email: 0.0,
                ses: 1.0,
            },
            duplicate_rate: 0.0,
            malformed_rate: 0.0,
            ..Scenario::default()
        };
        let mut generator = Generator::new(&scenario, "t", 1024).with_signer(signer);
        let Arrival::One(r) = generator.next_arrival() else {
            panic!("one request expected");
        };
        assert_eq!((r.kind, r.route), (Kind::Ses, Route::Ses));
        assert_eq!(r.content_type, "text/plain; charset=UTF-8");
        let cfg = envelope::NormalizeConfig::default();
        let ses = match envelope::normalize_ses(&r.body, &cfg, chrono::Utc::now()) {
            Ok(envelope::Normalized::Envelope(env)) => env,
            other => panic!("not an envelope: {other:?}"),
        };
        // The inline content is the harness's email of the same conversation.
        let raw = email(EMAIL_FIXTURES[0], "t", r.conversation, 99, "hi");
        let direct = envelope::normalize_email_bytes(raw.as_bytes(), &cfg, chrono::Utc::now())
            .expect("email normalizes");
        assert_eq!(ses.conversation_id, direct.conversation_id);
        assert_ne!(ses.event_id, direct.event_id);
        let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        let inner: serde_json::Value =
            serde_json::from_str(doc["Message"].as_str().expect("Message")).expect("inner json");
        assert_eq!(inner["receipt"]["action"]["type"], "SNS");
        assert_eq!(inner["receipt"]["action"]["encoding"], "BASE64");
        assert_ne!(tamper(&r.body), r.body);
        // Without a signer the ses share falls back to nothing unsigned.
        let mut plain = Generator::new(&scenario, "t", 1024);
        let Arrival::One(p) = plain.next_arrival() else {
            panic!("one request expected");
        };
        assert_ne!(p.route, Route::Ses);
    }
}
