//! SES traffic the ingress can verify: the harness is its own SNS. At start
//! it makes an RSA key and a self-signed certificate (rcgen), serves the
//! certificate PEM from a loopback HTTP server of its own and signs every
//! `Notification` with SignatureVersion 2 (SHA256withRSA) over the
//! canonical string of [`envelope::ses::SnsMessage`], the same code the
//! ingress verifies with.
//!
//! `serve` must trust the certificate's host: [`Signer::serve_env`] is
//! `SWITCHYARD_SNS_CERT_HOST_PATTERN` (a regex on the URL's host only; the
//! port is not part of it) plus `SWITCHYARD_SNS_ALLOW_HTTP=1`.
use std::net::SocketAddr;

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use envelope::ses::SnsMessage;

/// Path of the certificate on the harness's server (SNS-like name).
const CERT_PATH: &str = "/SimpleNotificationService-loadtest.pem";
/// The topic the simulated SES receipt rule publishes to.
pub const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:000000000000:loadtest-ses-inbound";

/// Signs SNS messages; its certificate is served while it lives.
pub struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert_url", &self.cert_url())
            .finish_non_exhaustive()
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Signer {
    /// Make the key and certificate and serve the PEM on `listen`
    /// (`127.0.0.1:0`: loopback, any free port).
    pub async fn start(listen: &str) -> anyhow::Result<Signer> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .context("generating the SNS signing key")?;
        let cert = rcgen::CertificateParams::new(vec!["sns.loadtest.invalid".to_owned()])
            .context("SNS certificate parameters")?
            .self_signed(&key)
            .context("self-signing the SNS certificate")?;
        let signer = RsaKeyPair::from_pkcs8(&key.serialize_der())
            .map_err(|e| anyhow::anyhow!("loading the SNS signing key: {e}"))?;
        let pem = cert.pem();
        let app = axum::Router::new().route(
            CERT_PATH,
            axum::routing::get(move || {
                let pem = pem.clone();
                async move { pem }
            }),
        );
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the SNS certificate server on {listen}"))?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("loadtest: SNS certificate server stopped: {e}");
            }
        });
        Ok(Signer {
            key: signer,
            rng: SystemRandom::new(),
            addr,
            server,
        })
    }

    /// `http://HOST:PORT/SimpleNotificationService-loadtest.pem`.
    pub fn cert_url(&self) -> String {
        format!("http://{}{CERT_PATH}", self.addr)
    }

    /// What `serve` needs to trust the certificate and the topic: the host
    /// pattern (a regex on the host alone, anchored), plain http, and the
    /// topic allowlist.
    pub fn serve_env(&self) -> Vec<(String, String)> {
        let host = match self.addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        vec![
            (
                "SWITCHYARD_SNS_CERT_HOST_PATTERN".to_owned(),
                format!("^{}$", regex_escape(&host)),
            ),
            ("SWITCHYARD_SNS_ALLOW_HTTP".to_owned(), "1".to_owned()),
            ("SWITCHYARD_SNS_TOPIC_ARNS".to_owned(), TOPIC_ARN.to_owned()),
        ]
    }

    /// A signed SNS `Notification` carrying `message`, as the JSON body SNS
    /// POSTs. `message_id` should be unique per notification.
    pub fn notification(
        &self,
        message_id: &str,
        subject: &str,
        message: String,
        timestamp: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let mut msg = SnsMessage {
            r#type: "Notification".to_owned(),
            message_id: message_id.to_owned(),
            topic_arn: TOPIC_ARN.to_owned(),
            subject: Some(subject.to_owned()),
            message,
            timestamp: timestamp.to_owned(),
            signature_version: Some("2".to_owned()),
            signature: None,
            signing_cert_url: Some(self.cert_url()),
            subscribe_url: None,
            token: None,
            unsubscribe_url: Some(format!(
                "http://{}/?Action=Unsubscribe&SubscriptionArn={TOPIC_ARN}:loadtest",
                self.addr
            )),
        };
        let canonical = msg
            .string_to_sign()
            .context("canonical string of the SNS notification")?;
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, canonical.as_bytes(), &mut sig)
            .map_err(|e| anyhow::anyhow!("signing the SNS notification: {e}"))?;
        msg.signature = Some(base64::engine::general_purpose::STANDARD.encode(sig));
        let mut doc = serde_json::to_value(&msg)?;
        // Real SNS leaves absent fields out rather than sending null.
        if let Some(o) = doc.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        Ok(doc)
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if ".[]{}()*+?^$|\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signs_what_the_canonical_string_says_and_serves_the_certificate() {
        let s = Signer::start("127.0.0.1:0").await.expect("signer");
        let doc = s
            .notification(
                "m-1",
                "Subj",
                "{\"a\":1}".into(),
                "2026-01-01T00:00:00.000Z",
            )
            .expect("signed");
        assert_eq!(doc["SignatureVersion"], "2");
        assert!(doc.get("Token").is_none(), "no null fields: {doc}");
        let msg: SnsMessage = serde_json::from_value(doc.clone()).expect("an SNS message");
        let canonical = msg.string_to_sign().expect("canonical");
        let sig = base64::engine::general_purpose::STANDARD
            .decode(doc["Signature"].as_str().expect("signature"))
            .expect("base64");
        let public = aws_lc_rs::signature::KeyPair::public_key(&s.key);
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            public.as_ref(),
        )
        .verify(canonical.as_bytes(), &sig)
        .expect("the signature verifies");
        let pem = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(s.cert_url())
            .send()
            .await
            .expect("cert server answers")
            .text()
            .await
            .expect("pem");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let env = s.serve_env();
        assert_eq!(env[0].1, r"^127\.0\.0\.1$");
        // Signing stays cheap enough for the mix (measured, not asserted).
        let t = std::time::Instant::now();
        for i in 0..50 {
            let _ = s.notification(&format!("m{i}"), "S", "x".repeat(2000), "T");
        }
        eprintln!("SNS signature: {:?} each", t.elapsed() / 50);
    }
}
