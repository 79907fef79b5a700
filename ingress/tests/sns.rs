//! The SES route: SNS signatures (v1 and v2) verified against a certificate
//! the test makes and serves on loopback; tampering, foreign certificate
//! hosts and subscription confirmation.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use axum::routing::get;
use base64::Engine;
use common::*;
use ingress::IngressConfig;
use ingress::sns::SnsMessage;
use serde_json::Value;

on_both_backends!(
    signed_notifications_are_accepted_and_tampered_ones_rejected,
    subscription_confirmation_fetches_the_allowlisted_subscribe_url,
    unsigned_records_beside_a_signed_notification_are_refused,
    a_topic_off_the_allowlist_is_refused_before_any_fetch,
);

/// A fake `sns.<region>.amazonaws.com`: serves the certificate and counts
/// certificate fetches and subscription confirmations.
struct FakeSns {
    base: String,
    cert_hits: Arc<AtomicUsize>,
    confirm_hits: Arc<AtomicUsize>,
    signer: RsaKeyPair,
    /// PKCS#8 PEM of the key, for SHA1withRSA via the openssl CLI
    /// (aws-lc-rs only verifies SHA-1 RSA signatures; it does not make them).
    key_pem: String,
    _server: tokio::task::JoinHandle<()>,
}

async fn fake_sns() -> FakeSns {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["sns.test.invalid".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = cert.pem();
    let signer = RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
    let key_pem = key.serialize_pem();
    let cert_hits = Arc::new(AtomicUsize::new(0));
    let confirm_hits = Arc::new(AtomicUsize::new(0));
    let (c, s) = (cert_hits.clone(), confirm_hits.clone());
    let app = axum::Router::new()
        .route(
            "/SimpleNotificationService-test.pem",
            get(move || {
                c.fetch_add(1, Ordering::SeqCst);
                let pem = pem.clone();
                async move { pem }
            }),
        )
        .route(
            "/confirm",
            get(move || {
                s.fetch_add(1, Ordering::SeqCst);
                async { "<ConfirmSubscriptionResponse/>" }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeSns {
        base,
        cert_hits,
        confirm_hits,
        signer,
        key_pem,
        _server: server,
    }
}

impl FakeSns {
    fn cert_url(&self) -> String {
        format!("{}/SimpleNotificationService-test.pem", self.base)
    }

    /// Set cert URL, version and a current Timestamp, then sign the
    /// canonical string. `None` when version 1 is asked and no `openssl`
    /// binary is available.
    fn sign(&self, mut doc: Value, version: &str) -> Option<Value> {
        doc["Timestamp"] = Value::String(sns_now());
        self.sign_as_is(doc, version)
    }

    /// Sign `doc` keeping its Timestamp.
    fn sign_as_is(&self, mut doc: Value, version: &str) -> Option<Value> {
        doc["SigningCertURL"] = Value::String(self.cert_url());
        doc["SignatureVersion"] = Value::String(version.to_owned());
        doc["Signature"] = Value::String("placeholder".to_owned());
        let msg: SnsMessage = serde_json::from_value(doc.clone()).unwrap();
        let canonical = msg.string_to_sign().unwrap();
        let sig = if version == "1" {
            openssl_sha1_sign(&self.key_pem, canonical.as_bytes())?
        } else {
            let mut sig = vec![0; self.signer.public_modulus_len()];
            self.signer
                .sign(
                    &RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    canonical.as_bytes(),
                    &mut sig,
                )
                .unwrap();
            sig
        };
        doc["Signature"] = Value::String(base64::engine::general_purpose::STANDARD.encode(sig));
        Some(doc)
    }
}

fn openssl_sha1_sign(key_pem: &str, data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, key_pem).unwrap();
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha1", "-sign"])
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(data).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout)
}

/// The topic of the corpus notification.
const CORPUS_TOPIC: &str = "arn:aws:sns:us-east-1:012345678912:example-topic";
/// The topic of the subscription test.
const INBOUND_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-inbound";

fn sns_config() -> IngressConfig {
    let mut cfg = IngressConfig::default();
    cfg.sns.cert_host_pattern = r"^127\.0\.0\.1$".to_owned();
    cfg.sns.allow_http = true;
    cfg.sns.topic_arns = Some(vec![CORPUS_TOPIC.to_owned(), INBOUND_TOPIC.to_owned()]);
    cfg
}

/// Now, as SNS writes its `Timestamp`.
fn sns_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn notification() -> Value {
    let path = format!("{CORPUS}/ses/assembled__sns-http-envelope-with-received.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

async fn post_ses(app: &App, doc: &Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/webhooks/ses"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header(
            "x-amz-sns-message-type",
            doc["Type"].as_str().unwrap_or_default(),
        )
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    decode(resp).await
}

async fn signed_notifications_are_accepted_and_tampered_ones_rejected(tb: TestBackend) {
    let sns = fake_sns().await;
    let app = serve(tb.backend.clone(), sns_config()).await;

    // The corpus placeholder signature cannot verify.
    let mut unsigned = notification();
    unsigned["SigningCertURL"] = Value::String(sns.cert_url());
    unsigned["Timestamp"] = Value::String(sns_now());
    let (status, json) = post_ses(&app, &unsigned).await;
    assert_eq!(status, 401, "{}: {json}", tb.name);
    assert_eq!(app.visible().await, 0);

    let v2 = sns.sign(notification(), "2").unwrap();
    let (status, json) = post_ses(&app, &v2).await;
    assert_eq!(status, 202, "{}: SignatureVersion 2: {json}", tb.name);
    assert_eq!(app.visible().await, 1);

    // Version 1 (SHA1withRSA) of the same notification: verified, and a duplicate.
    match sns.sign(notification(), "1") {
        Some(v1) => {
            let (status, json) = post_ses(&app, &v1).await;
            assert_eq!(status, 200, "{}: SignatureVersion 1: {json}", tb.name);
            assert_eq!(json["status"], "duplicate");
            let mut bad = v1.clone();
            bad["MessageId"] = Value::String("another-id".to_owned());
            assert_eq!(post_ses(&app, &bad).await.0, 401, "tampered v1");
        }
        None => eprintln!(
            "SignatureVersion 1 skipped: no openssl binary to make a SHA1withRSA signature"
        ),
    }

    // Tampered after signing: the message text changes.
    let mut tampered = v2.clone();
    let inner = tampered["Message"]
        .as_str()
        .unwrap()
        .replace("recipient@example.com", "attacker@example.com");
    tampered["Message"] = Value::String(inner);
    let (status, json) = post_ses(&app, &tampered).await;
    assert_eq!(status, 401, "{}: tampered: {json}", tb.name);
    assert_eq!(json["error"], "unauthorized");
    assert_eq!(
        app.visible().await,
        1,
        "nothing stored for a tampered message"
    );

    // A certificate host outside the allowlist is never fetched.
    let mut foreign = v2.clone();
    foreign["SigningCertURL"] = Value::String(sns.cert_url().replace("127.0.0.1", "localhost"));
    let before = sns.cert_hits.load(Ordering::SeqCst);
    let (status, json) = post_ses(&app, &foreign).await;
    assert_eq!(status, 401, "{}: {json}", tb.name);
    assert!(json["reason"].as_str().unwrap().contains("SigningCertURL"));
    assert_eq!(sns.cert_hits.load(Ordering::SeqCst), before);

    // The certificate was fetched once and cached.
    assert_eq!(
        sns.cert_hits.load(Ordering::SeqCst),
        1,
        "{}: cached certificate",
        tb.name
    );
}

async fn subscription_confirmation_fetches_the_allowlisted_subscribe_url(tb: TestBackend) {
    let sns = fake_sns().await;
    let app = serve(tb.backend.clone(), sns_config()).await;
    let confirm = serde_json::json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-inbound",
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:ses-inbound.",
        "SubscribeURL": format!("{}/confirm?Action=ConfirmSubscription&Token=2336", sns.base),
    });
    let (status, json) = post_ses(&app, &sns.sign(confirm.clone(), "2").unwrap()).await;
    assert_eq!(status, 200, "{}: {json}", tb.name);
    assert_eq!(json["status"], "subscribed");
    assert_eq!(sns.confirm_hits.load(Ordering::SeqCst), 1);

    // Signed, but the SubscribeURL points elsewhere: not fetched.
    let mut elsewhere = confirm.clone();
    elsewhere["SubscribeURL"] = Value::String("http://example.com/confirm".to_owned());
    let (status, _) = post_ses(&app, &sns.sign(elsewhere, "2").unwrap()).await;
    assert_eq!(status, 400, "{}", tb.name);
    // Unsigned confirmations are refused before any fetch.
    let mut forged = sns.sign(confirm, "2").unwrap();
    forged["Token"] = Value::String("forged".to_owned());
    let (status, _) = post_ses(&app, &forged).await;
    assert_eq!(status, 401);
    assert_eq!(sns.confirm_hits.load(Ordering::SeqCst), 1);
    assert_eq!(app.visible().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ses_route_limits_and_garbage() {
    let tb = embedded().await;
    let mut cfg = sns_config();
    cfg.limits.ses = 2048;
    let app = serve(tb.backend.clone(), cfg).await;
    let (status, _) = post_ses(&app, &notification()).await;
    assert_eq!(status, 413, "the corpus notification is larger than 2 KB");
    let resp = app
        .http
        .post(app.url("/webhooks/ses"))
        .header("content-type", "text/plain")
        .body("not json")
        .send()
        .await
        .unwrap();
    let (status, json) = decode(resp).await;
    assert_eq!(status, 400);
    assert_eq!(json["error"], "invalid_sns");
    let resp = app
        .http
        .post(app.url("/webhooks/ses"))
        .header("content-type", "image/png")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
}

/// The first queued envelope.
async fn queued_envelope(app: &App) -> envelope::Envelope {
    let got = app
        .backend
        .queue
        .receive(
            10,
            std::time::Duration::from_secs(30),
            std::time::Duration::from_secs(2),
        )
        .await
        .unwrap();
    envelope::decode(got.first().expect("a queued message").body.as_bytes()).unwrap()
}

async fn unsigned_records_beside_a_signed_notification_are_refused(tb: TestBackend) {
    let sns = fake_sns().await;
    let app = serve(tb.backend.clone(), sns_config()).await;
    // A validly signed notification, with an unsigned Lambda-style SES
    // record beside it carrying a forged email.
    let mut forged = sns.sign(notification(), "2").unwrap();
    forged["Records"] = serde_json::json!([{ "ses": {
        "mail": { "messageId": "forged-1", "headers": [
            { "name": "From", "value": "ceo@victim.example" },
            { "name": "Message-ID", "value": "<forged-1@victim.example>" },
            { "name": "Subject", "value": "Refund everything" }
        ]},
        "receipt": { "action": { "type": "Lambda" } }
    }}]);
    let (status, json) = post_ses(&app, &forged).await;
    assert_eq!(status, 400, "{}: {json}", tb.name);
    assert_eq!(json["error"], "unexpected_sns_field");
    assert!(
        json["reason"].as_str().unwrap().contains("Records"),
        "{json}"
    );
    assert_eq!(app.visible().await, 0, "{}: nothing stored", tb.name);

    // The same signed document alone is accepted, and what is queued is
    // what the signed Message says.
    let signed = sns.sign(notification(), "2").unwrap();
    let (status, json) = post_ses(&app, &signed).await;
    assert_eq!(status, 202, "{}: {json}", tb.name);
    let env = queued_envelope(&app).await;
    let message: Value = serde_json::from_str(signed["Message"].as_str().unwrap()).unwrap();
    let signed_from = message["mail"]["commonHeaders"]["from"][0]
        .as_str()
        .unwrap();
    let from = env.email.from.clone().unwrap_or_default();
    assert!(
        signed_from.contains(&from) && !from.is_empty(),
        "{}: {from} from {signed_from}",
        tb.name
    );
}

async fn a_topic_off_the_allowlist_is_refused_before_any_fetch(tb: TestBackend) {
    let sns = fake_sns().await;
    let app = serve(tb.backend.clone(), sns_config()).await;
    let attacker = "arn:aws:sns:us-east-1:999999999999:attacker-topic";
    // Another account's topic, its notification validly signed.
    let mut other = notification();
    other["TopicArn"] = Value::String(attacker.to_owned());
    let (status, json) = post_ses(&app, &sns.sign(other, "2").unwrap()).await;
    assert_eq!(status, 403, "{}: {json}", tb.name);
    assert_eq!(json["error"], "sns_sender_not_allowed");
    assert!(
        json["reason"].as_str().unwrap().contains(attacker),
        "{json}"
    );
    // Its subscription confirmation is not confirmed.
    let confirm = serde_json::json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1c",
        "Token": "2336412f37fb",
        "TopicArn": attacker,
        "Message": "You have chosen to subscribe.",
        "SubscribeURL": format!("{}/confirm?Action=ConfirmSubscription&Token=2336", sns.base),
    });
    let (status, json) = post_ses(&app, &sns.sign(confirm, "2").unwrap()).await;
    assert_eq!(status, 403, "{}: {json}", tb.name);
    assert_eq!(
        sns.confirm_hits.load(Ordering::SeqCst),
        0,
        "no confirmation fetched"
    );
    assert_eq!(
        sns.cert_hits.load(Ordering::SeqCst),
        0,
        "no certificate fetched"
    );
    assert_eq!(app.visible().await, 0);

    // With no allowlist at all, the route accepts nothing.
    let mut open = sns_config();
    open.sns.topic_arns = None;
    let closed = serve(tb.backend.clone(), open).await;
    let (status, json) = post_ses(&closed, &sns.sign(notification(), "2").unwrap()).await;
    assert_eq!(status, 403, "{}: {json}", tb.name);
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("SWITCHYARD_SNS_TOPIC_ARNS")
    );
    // `*` is an explicit choice to accept any topic.
    let mut any = sns_config();
    any.sns.topic_arns = Some(vec![ingress::ANY_TOPIC.to_owned()]);
    let anyone = serve(tb.backend.clone(), any).await;
    let mut other = notification();
    other["TopicArn"] = Value::String(attacker.to_owned());
    let (status, json) = post_ses(&anyone, &sns.sign(other, "2").unwrap()).await;
    assert_eq!(status, 202, "{}: {json}", tb.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_message_replayed_after_the_max_age_is_refused() {
    let tb = embedded().await;
    let sns = fake_sns().await;
    let app = serve(tb.backend.clone(), sns_config()).await;
    let mut old = notification();
    let two_hours_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    old["Timestamp"] = Value::String(two_hours_ago.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    let (status, json) = post_ses(&app, &sns.sign_as_is(old, "2").unwrap()).await;
    assert_eq!(status, 403, "{json}");
    assert!(json["reason"].as_str().unwrap().contains("old"), "{json}");
    assert_eq!(app.visible().await, 0);
    assert_eq!(sns.cert_hits.load(Ordering::SeqCst), 0);
}
