//! SNS signature verification: fetch the signing certificate (allowlisted
//! hosts only, cached), then check the RSA signature over the canonical
//! string (SignatureVersion 1 = SHA1withRSA, 2 = SHA256withRSA).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use base64::Engine;
use regex::Regex;

use super::SnsMessage;
use crate::IngressError;
use crate::config::SnsConfig;

/// Largest certificate we download.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Distinct certificates remembered (SNS rotates them rarely).
const MAX_CACHED: usize = 32;

/// Why a message did not verify. The `Display` text is safe to return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The URL of the field named is not https (or allowed http) on a host
    /// matching the certificate host pattern.
    #[error("{0} is not an allowed SNS URL")]
    UrlNotAllowed(&'static str),
    /// `SignatureVersion` is neither 1 nor 2.
    #[error("unsupported SignatureVersion")]
    UnsupportedVersion,
    /// The string to sign cannot be built.
    #[error("message cannot be canonicalized (unknown Type or missing field)")]
    NotCanonical,
    /// `Signature` is not base64.
    #[error("Signature is not base64")]
    BadEncoding,
    /// The certificate is not a usable RSA certificate (what is wrong).
    #[error("signing certificate unusable: {0}")]
    BadCertificate(&'static str),
    /// The certificate could not be fetched (transient).
    #[error("signing certificate could not be fetched")]
    Fetch,
    /// The signature does not verify.
    #[error("signature does not match")]
    Mismatch,
}

impl VerifyError {
    /// Fetch failures are ours (503); everything else is the sender's (401).
    pub fn is_transient(&self) -> bool {
        matches!(self, VerifyError::Fetch)
    }
}

/// Verifies SNS messages; cheap to share (`Arc` inside).
#[derive(Debug, Clone)]
pub struct Verifier {
    http: reqwest::Client,
    host: Regex,
    allow_http: bool,
    /// Certificate URL → RSA public key (PKCS#1 DER).
    cache: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>,
}

impl Verifier {
    /// A verifier with `cfg`'s host pattern, scheme and fetch timeout;
    /// `Config` for a bad host pattern.
    pub fn new(cfg: &SnsConfig) -> Result<Self, IngressError> {
        let host = Regex::new(&cfg.cert_host_pattern)
            .map_err(|e| IngressError::Config(format!("invalid SNS cert host pattern: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.fetch_timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IngressError::HttpClient(e.to_string()))?;
        Ok(Verifier {
            http,
            host,
            allow_http: cfg.allow_http,
            cache: Arc::default(),
        })
    }

    /// The URL, if its scheme and host are allowed.
    pub fn allowed_url(&self, url: &str, what: &'static str) -> Result<reqwest::Url, VerifyError> {
        let u = reqwest::Url::parse(url).map_err(|_| VerifyError::UrlNotAllowed(what))?;
        let scheme_ok = u.scheme() == "https" || (self.allow_http && u.scheme() == "http");
        let host_ok = u.host_str().is_some_and(|h| self.host.is_match(h));
        if scheme_ok && host_ok && u.username().is_empty() && u.password().is_none() {
            Ok(u)
        } else {
            Err(VerifyError::UrlNotAllowed(what))
        }
    }

    /// Check `msg`'s signature.
    pub async fn verify(&self, msg: &SnsMessage) -> Result<(), VerifyError> {
        let alg: &'static dyn VerificationAlgorithm =
            match msg.signature_version.as_deref().unwrap_or("") {
                "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                "2" => &RSA_PKCS1_2048_8192_SHA256,
                _ => return Err(VerifyError::UnsupportedVersion),
            };
        let canonical = msg
            .string_to_sign()
            .map_err(|_| VerifyError::NotCanonical)?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(msg.signature.as_deref().unwrap_or("").trim())
            .map_err(|_| VerifyError::BadEncoding)?;
        let key = self
            .public_key(msg.signing_cert_url.as_deref().unwrap_or(""))
            .await?;
        UnparsedPublicKey::new(alg, key.as_slice())
            .verify(canonical.as_bytes(), &sig)
            .map_err(|_| VerifyError::Mismatch)
    }

    /// Confirm a subscription: GET its (allowlisted) SubscribeURL.
    pub async fn confirm(&self, subscribe_url: &str) -> Result<(), VerifyError> {
        let url = self.allowed_url(subscribe_url, "SubscribeURL")?;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|_| VerifyError::Fetch)?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(VerifyError::Fetch)
        }
    }

    async fn public_key(&self, cert_url: &str) -> Result<Arc<Vec<u8>>, VerifyError> {
        let url = self.allowed_url(cert_url, "SigningCertURL")?;
        if let Some(k) = self.lock().get(url.as_str()) {
            return Ok(k.clone());
        }
        let mut resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|_| VerifyError::Fetch)?;
        if !resp.status().is_success() {
            return Err(VerifyError::Fetch);
        }
        let mut pem = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| VerifyError::Fetch)? {
            pem.extend_from_slice(&chunk);
            if pem.len() > MAX_CERT_BYTES {
                return Err(VerifyError::BadCertificate("too large"));
            }
        }
        let key = Arc::new(public_key_from_pem(&pem)?);
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(url.to_string(), key.clone());
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<u8>>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The RSA public key (PKCS#1 DER) of a PEM certificate that is valid now.
fn public_key_from_pem(pem: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|_| VerifyError::BadCertificate("not PEM"))?;
    let cert = pem
        .parse_x509()
        .map_err(|_| VerifyError::BadCertificate("not X.509"))?;
    if !cert.validity().is_valid() {
        return Err(VerifyError::BadCertificate("expired or not yet valid"));
    }
    Ok(cert.public_key().subject_public_key.data.to_vec())
}
