//! SES/SNS documents: confirmations, inline content, S3 pointers, Lambda events.
use base64::Engine;
use chrono::Utc;
use envelope::{
    BlobRef, NormalizeConfig, Normalized, SourceKind, normalize_email_bytes, normalize_ses,
};
use serde_json::json;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/corpus/ses/");

fn ses(body: &[u8]) -> Result<Normalized, envelope::NormalizeError> {
    normalize_ses(body, &NormalizeConfig::default(), Utc::now())
}

fn envelope_of(out: Normalized) -> envelope::Envelope {
    match out {
        Normalized::Envelope(env) => env,
        other => panic!("expected an envelope, got {other:?}"),
    }
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}{name}")).expect("corpus file")
}

#[test]
fn subscription_and_unsubscribe_confirmations() {
    let sub = json!({"Type":"SubscriptionConfirmation","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t",
        "Token":"tok","Message":"You have chosen...","SubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "Timestamp":"2025-12-21T00:00:00.000Z","SignatureVersion":"1","Signature":"x","SigningCertURL":"https://sns/cert.pem"});
    assert_eq!(
        ses(sub.to_string().as_bytes()).expect("sub"),
        Normalized::SnsSubscriptionConfirmation {
            topic_arn: "arn:aws:sns:us-east-1:1:t".into(),
            subscribe_url: "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription".into(),
            token: "tok".into(),
        }
    );
    let unsub = json!({"Type":"UnsubscribeConfirmation","MessageId":"m","TopicArn":"arn:t","Token":"tok",
        "Message":"","SubscribeURL":"https://x","Timestamp":"T"});
    assert_eq!(
        ses(unsub.to_string().as_bytes()).expect("unsub"),
        Normalized::SnsUnsubscribeConfirmation {
            topic_arn: "arn:t".into()
        }
    );
    let odd = json!({"Type":"Surprise","MessageId":"m","TopicArn":"arn:t","Timestamp":"T"});
    assert_eq!(
        ses(odd.to_string().as_bytes())
            .expect_err("odd")
            .reason_code(),
        "unsupported_sns_type"
    );
}

#[test]
fn sns_action_content_matches_the_same_raw_email() {
    let notification: serde_json::Value =
        serde_json::from_slice(&corpus("aws-docs__sns-action-received-notification.json"))
            .expect("json");
    let raw = notification["content"]
        .as_str()
        .expect("content")
        .to_owned();
    let via_ses =
        envelope_of(ses(&corpus("assembled__sns-http-envelope-with-received.json")).expect("ses"));
    let direct = normalize_email_bytes(raw.as_bytes(), &NormalizeConfig::default(), Utc::now())
        .expect("raw");
    assert_eq!(
        via_ses.event_id, direct.event_id,
        "one email, one event id, whichever way it came"
    );
    assert_eq!(via_ses.message.text, "Example content");
    assert_eq!(via_ses.meta.source, SourceKind::SesSns);

    // BASE64 encoding of the same content gives the same envelope content.
    let mut b64 = notification.clone();
    b64["receipt"]["action"]["encoding"] = json!("BASE64");
    b64["content"] = json!(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()));
    let decoded = envelope_of(ses(b64.to_string().as_bytes()).expect("b64"));
    assert_eq!(decoded.event_id, direct.event_id);
    assert_eq!(decoded.message.text, "Example content");

    b64["content"] = json!("%%% not base64");
    assert_eq!(
        ses(b64.to_string().as_bytes())
            .expect_err("bad")
            .reason_code(),
        "invalid_content"
    );
}

#[test]
fn s3_action_points_at_the_blob_and_the_worker_fills_the_text() {
    let env = envelope_of(ses(&corpus("aws-docs__s3-action-alert-notification.json")).expect("s3"));
    assert_eq!(
        env.blob,
        Some(BlobRef {
            bucket: "my-S3-bucket".into(),
            key: "ss4ibatj6qhg5dl6d0r3srfuh2pkc10vp9dm9c81".into()
        })
    );
    assert_eq!(env.message.text, "");
    assert_eq!(env.email.subject.as_deref(), Some("Example subject"));
    let notification: serde_json::Value =
        serde_json::from_slice(&corpus("aws-docs__sns-action-received-notification.json"))
            .expect("json");
    let raw = notification["content"].as_str().expect("content");
    let filled = env
        .clone()
        .with_email_body(raw.as_bytes(), &NormalizeConfig::default())
        .expect("fill");
    assert_eq!(filled.message.text, "Example content");
    assert_eq!(filled.event_id, env.event_id);
    assert_eq!(filled.blob, env.blob);
}

#[test]
fn lambda_events_are_understood() {
    let env = envelope_of(
        ses(&corpus("rust-runtime__example-ses-lambda-event.json")).expect("lambda ses"),
    );
    assert_eq!(env.meta.source, SourceKind::SesLambda);
    assert_eq!(env.email.subject.as_deref(), Some("Test Subject"));
    assert_eq!(env.blob, None);
    let env = envelope_of(ses(&corpus("lambda-go__ses-s3-event.json")).expect("lambda s3"));
    assert_eq!(env.blob.map(|b| b.key), Some("email".to_owned()));
    let env = envelope_of(
        ses(&corpus("assembled__lambda-sns-event-with-received.json")).expect("lambda sns"),
    );
    assert_eq!(env.message.text, "Example content");
}

#[test]
fn non_received_notifications_are_ignored_and_junk_is_named() {
    let bounce = json!({"Type":"Notification","MessageId":"m","TopicArn":"arn:t","Timestamp":"T",
        "Message": json!({"notificationType":"Bounce","bounce":{},"mail":{}}).to_string()});
    assert!(matches!(
        ses(bounce.to_string().as_bytes()).expect("bounce"),
        Normalized::Ignored { .. }
    ));
    let hello = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/corpus/lambda-events/rust-runtime__example-sns-event.json"
    ))
    .expect("sns");
    assert_eq!(
        ses(&hello).expect_err("not ses").reason_code(),
        "invalid_sns_message"
    );
    assert_eq!(
        ses(b"{\"Records\":[]}").expect_err("none").reason_code(),
        "unexpected_record_count"
    );
    assert_eq!(
        ses(b"{\"hello\":1}").expect_err("junk").reason_code(),
        "unrecognized_ses"
    );
    assert_eq!(
        ses(b"{\"Type\":\"Notification\"}")
            .expect_err("missing")
            .to_string(),
        "sns message: missing field MessageId"
    );
}
