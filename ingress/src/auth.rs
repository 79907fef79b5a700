//! Authentication of the token routes (Richpanel, raw email).
//!
//! A request is accepted when it carries either
//! - the static token in the configured header, equal (constant time, over
//!   SHA-256 digests so lengths leak nothing) to the current token or the
//!   previous one (rotation without downtime), or
//! - when an HMAC key is configured and the request carries
//!   `X-Switchyard-Signature`: a valid `sha256=<hex>` HMAC-SHA256 over
//!   `timestamp + "." + body` with `X-Switchyard-Timestamp` (unix seconds)
//!   inside the replay window. A present but bad signature is rejected; it
//!   never falls back to the token. Replays inside the window are stopped by
//!   the idempotency ledger (same body → same event id → duplicate).
//!
//! Tokens are read through the secrets cache on every request, so a rotated
//! secret takes effect within the cache TTL; after a failed check the cache
//! is refreshed at most once per [`REFRESH_EVERY`].
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Reject;

/// Secret holding the current token.
pub const SECRET_TOKEN: &str = "webhook-token";
/// Secret holding the previous token, still accepted during rotation.
pub const SECRET_TOKEN_PREVIOUS: &str = "webhook-token-previous";
/// Secret holding the optional HMAC key.
pub const SECRET_HMAC_KEY: &str = "webhook-hmac-key";
/// Environment variable that may also hold the token.
pub const ENV_TOKEN: &str = "SWITCHYARD_WEBHOOK_TOKEN";
/// HMAC header: the request's Unix time in seconds, covered by the
/// signature.
pub const HEADER_TIMESTAMP: &str = "x-switchyard-timestamp";
/// HMAC header: the signature over the timestamp and the body ([`sign`]).
pub const HEADER_SIGNATURE: &str = "x-switchyard-signature";

/// Minimum time between forced secret refreshes after failed checks (so
/// wrong tokens cannot hammer Secrets Manager).
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The credentials in force, read from the secrets port.
#[derive(Debug)]
pub(crate) struct Auth {
    secrets: ports::Secrets,
    env_token: Option<String>,
    header: http::HeaderName,
    /// The header name as configured (for messages).
    header_label: String,
    window: Duration,
    last_refresh: Mutex<Option<Instant>>,
}

/// What a request presented.
pub(crate) enum Presented {
    /// A token header (checked before reading the body).
    Token,
    /// A signature (checked once the body is read).
    Signature,
}

impl Auth {
    pub(crate) fn new(
        secrets: ports::Secrets,
        env_token: Option<String>,
        header_label: &str,
        window: Duration,
    ) -> Result<Self, crate::IngressError> {
        let header = http::HeaderName::from_bytes(header_label.as_bytes())
            .map_err(|_| crate::IngressError::Config("invalid token header name".into()))?;
        Ok(Auth {
            secrets,
            env_token: env_token.filter(|t| !t.is_empty()),
            header,
            header_label: header_label.to_owned(),
            window,
            last_refresh: Mutex::new(None),
        })
    }

    /// True when some token is configured (secret or env).
    pub(crate) async fn has_token(&self) -> Result<bool, ports::PortError> {
        Ok(self.env_token.is_some() || self.secrets.get(SECRET_TOKEN).await?.is_some())
    }

    /// Header-only check. `Ok(Signature)` defers to [`Auth::check_signature`].
    pub(crate) async fn check_headers(&self, headers: &HeaderMap) -> Result<Presented, Reject> {
        if headers.contains_key(HEADER_SIGNATURE) && self.hmac_key(false).await?.is_some() {
            return Ok(Presented::Signature);
        }
        let Some(given) = headers.get(&self.header) else {
            return Err(Reject::unauthorized(format!(
                "missing {} header",
                self.header_label
            )));
        };
        if self.token_matches(given.as_bytes(), false).await?
            || (self.may_refresh() && self.token_matches(given.as_bytes(), true).await?)
        {
            Ok(Presented::Token)
        } else {
            Err(Reject::unauthorized(format!(
                "wrong {} header",
                self.header_label
            )))
        }
    }

    /// Verify `X-Switchyard-Signature` over `timestamp.body`.
    pub(crate) async fn check_signature(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Reject> {
        let ts = headers
            .get(HEADER_TIMESTAMP)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Reject::unauthorized("missing X-Switchyard-Timestamp header"))?;
        check_timestamp(ts, chrono::Utc::now().timestamp(), self.window.as_secs())
            .map_err(Reject::unauthorized)?;
        let sig = headers
            .get(HEADER_SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("sha256="))
            .and_then(|hex| base16ct::mixed::decode_vec(hex).ok())
            .ok_or_else(|| Reject::unauthorized("X-Switchyard-Signature must be sha256=<hex>"))?;
        let mut ok = false;
        for refresh in [false, true] {
            if refresh && !self.may_refresh() {
                break;
            }
            if let Some(key) = self.hmac_key(refresh).await? {
                ok = verify_hmac(key.as_bytes(), ts.trim(), body, &sig);
            }
            if ok {
                break;
            }
        }
        if ok {
            Ok(())
        } else {
            Err(Reject::unauthorized("bad X-Switchyard-Signature"))
        }
    }

    async fn token_matches(&self, given: &[u8], refresh: bool) -> Result<bool, Reject> {
        let given = Sha256::digest(given);
        let mut any = false;
        let mut candidates = Vec::with_capacity(3);
        if let Some(t) = &self.env_token {
            candidates.push(t.clone());
        }
        for name in [SECRET_TOKEN, SECRET_TOKEN_PREVIOUS] {
            if let Some(t) = self.secret(name, refresh).await? {
                candidates.push(t);
            }
        }
        for c in candidates.iter().filter(|c| !c.is_empty()) {
            // No early exit: every candidate is compared.
            any |= bool::from(Sha256::digest(c.as_bytes()).ct_eq(&given));
        }
        Ok(any)
    }

    async fn hmac_key(&self, refresh: bool) -> Result<Option<String>, Reject> {
        Ok(self
            .secret(SECRET_HMAC_KEY, refresh)
            .await?
            .filter(|k| !k.is_empty()))
    }

    async fn secret(&self, name: &str, refresh: bool) -> Result<Option<String>, Reject> {
        let got = if refresh {
            self.secrets.refresh(name).await
        } else {
            self.secrets.get(name).await
        };
        got.map_err(|e| {
            tracing::warn!(error = %envelope::redact::redacted(&e), "cannot read webhook credentials");
            Reject::unavailable("credentials store unavailable", Duration::from_secs(5))
        })
    }

    fn may_refresh(&self) -> bool {
        let mut last = self.last_refresh.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(at) if at.elapsed() < REFRESH_EVERY => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }
}

fn verify_hmac(key: &[u8], ts: &str, body: &[u8], sig: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(sig).is_ok()
}

/// `sha256=<hex>` signature of `ts.body` with `key`: what a signing sender
/// puts in `X-Switchyard-Signature`.
pub fn sign(key: &[u8], ts: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "sha256={}",
        base16ct::lower::encode_string(&mac.finalize().into_bytes())
    )
}

/// A new strong token: 32 random bytes, base64url, prefixed `swy_` so
/// secret scanners can spot leaked ones.
pub fn generate_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "swy_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// `X-Switchyard-Timestamp` (unix seconds) within `window` seconds of
/// `now`, either way. Any header value, however extreme, is an answer,
/// never an overflow.
fn check_timestamp(header: &str, now: i64, window: u64) -> Result<(), &'static str> {
    let secs: i64 = header
        .trim()
        .parse()
        .map_err(|_| "X-Switchyard-Timestamp is not unix seconds")?;
    if now.abs_diff(secs) > window {
        return Err("X-Switchyard-Timestamp outside the replay window");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn extreme_timestamps_are_refused_not_overflowed() {
        let now = 1_700_000_000;
        for ts in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            assert!(check_timestamp(&ts.to_string(), now, 300).is_err(), "{ts}");
        }
        assert!(check_timestamp(&i64::MIN.to_string(), i64::MAX, u64::MAX).is_ok());
        assert!(check_timestamp("1700000299", now, 300).is_ok());
        assert!(check_timestamp("1699999700", now, 300).is_ok());
        assert!(check_timestamp("1700000301", now, 300).is_err());
        assert!(check_timestamp("99999999999999999999", now, 300).is_err());
    }

    proptest! {
        #[test]
        fn any_timestamp_header_is_answered(header in ".{0,40}", now in any::<i64>(), window in any::<u64>()) {
            let _ = check_timestamp(&header, now, window);
        }

        #[test]
        fn any_number_is_judged_by_its_distance(ts in any::<i64>(), now in any::<i64>(), window in 0u64..1_000_000) {
            let inside = (i128::from(now) - i128::from(ts)).unsigned_abs() <= u128::from(window);
            prop_assert_eq!(check_timestamp(&ts.to_string(), now, window).is_ok(), inside);
        }
    }

    #[test]
    fn hmac_round_trip_and_tamper() {
        let sig = sign(b"k", "1700000000", b"{}");
        let raw = base16ct::mixed::decode_vec(sig.trim_start_matches("sha256=")).expect("hex");
        assert!(verify_hmac(b"k", "1700000000", b"{}", &raw));
        assert!(!verify_hmac(b"k", "1700000001", b"{}", &raw));
        assert!(!verify_hmac(b"k", "1700000000", b"{ }", &raw));
        assert!(!verify_hmac(b"other", "1700000000", b"{}", &raw));
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.len() >= 40 && a.starts_with("swy_"));
    }
}
