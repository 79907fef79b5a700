//! Ingress configuration: a documented serde struct with defaults,
//! overridable from the environment ([`IngressConfig::from_env`]).
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::IngressError;

/// Default name of the static token header.
pub const DEFAULT_TOKEN_HEADER: &str = "X-Switchyard-Token";

/// Any-region SNS certificate host: `sns.<region>.amazonaws.com`.
pub const DEFAULT_SNS_CERT_HOST_PATTERN: &str = r"^sns\.[a-z0-9-]+\.amazonaws\.com$";

/// Everything the ingress can be told. Every field has a default; a config
/// file may give any subset (`#[serde(default)]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IngressConfig {
    /// Header carrying the static token (tenants pick it in Richpanel).
    pub token_header: String,
    /// Body size limits per route, in bytes (over → 413).
    pub limits: BodyLimits,
    /// How long an `in_progress` ledger claim lasts before another request
    /// may take it over (a crashed first attempt is not a lost event).
    pub in_progress_secs: u64,
    /// How long an accepted event id is remembered (duplicates within this
    /// window answer `200 duplicate`).
    pub keep_secs: u64,
    /// How long a request waits for a concurrent identical request that is
    /// mid-flight before answering 503 + `Retry-After`, in milliseconds.
    pub in_flight_wait_ms: u64,
    /// Accepted clock skew for HMAC-signed requests (`X-Switchyard-Timestamp`).
    pub hmac_window_secs: u64,
    /// SNS (SES route) verification settings.
    pub sns: SnsConfig,
    /// Normalizer settings (text truncation, bucketing...).
    pub normalize: envelope::NormalizeConfig,
}

/// Per-route body limits in bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default)]
pub struct BodyLimits {
    /// Richpanel HTTP target bodies: small JSON templates.
    pub richpanel: usize,
    /// SNS notification: SES inline mail is ≤ 150 KB plus the JSON envelope.
    pub ses: usize,
    /// A raw RFC 5322 message, attachments included.
    pub email: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            richpanel: 256 * 1024,
            ses: 256 * 1024,
            email: 10 * 1024 * 1024,
        }
    }
}

/// How SNS messages are authenticated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SnsConfig {
    /// Regex the host of `SigningCertURL` and `SubscribeURL` must match.
    pub cert_host_pattern: String,
    /// Allow `http://` certificate/subscribe URLs. Tests only: in
    /// production SNS always uses https.
    pub allow_http: bool,
    /// Timeout of the certificate fetch and the subscription confirmation.
    pub fetch_timeout_secs: u64,
    /// Topics whose messages are accepted (`SWITCHYARD_SNS_TOPIC_ARNS`,
    /// comma-separated ARNs). `None`: no allowlist configured, so the SES
    /// route refuses everything. `["*"]`: any topic (any AWS account can then
    /// subscribe its own topic to the endpoint; warned at start).
    pub topic_arns: Option<Vec<String>>,
    /// Oldest message `Timestamp` accepted, in seconds (a captured message
    /// cannot be replayed after this); also the furthest it may lie in the
    /// future.
    pub max_age_secs: u64,
}

/// The wildcard entry of [`SnsConfig::topic_arns`].
pub const ANY_TOPIC: &str = "*";

impl SnsConfig {
    /// Whether the allowlist is the explicit wildcard.
    pub fn any_topic(&self) -> bool {
        self.topic_arns
            .as_ref()
            .is_some_and(|t| t.iter().any(|a| a == ANY_TOPIC))
    }
}

impl Default for SnsConfig {
    fn default() -> Self {
        SnsConfig {
            cert_host_pattern: DEFAULT_SNS_CERT_HOST_PATTERN.to_owned(),
            allow_http: false,
            fetch_timeout_secs: 5,
            topic_arns: None,
            max_age_secs: 3600,
        }
    }
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            token_header: DEFAULT_TOKEN_HEADER.to_owned(),
            limits: BodyLimits::default(),
            in_progress_secs: 30,
            keep_secs: 72 * 3600,
            in_flight_wait_ms: 2000,
            hmac_window_secs: 300,
            sns: SnsConfig::default(),
            normalize: envelope::NormalizeConfig::default(),
        }
    }
}

impl IngressConfig {
    /// Defaults overridden by `SWITCHYARD_*` variables:
    /// `SWITCHYARD_TOKEN_HEADER`, `SWITCHYARD_LIMIT_RICHPANEL_BYTES`,
    /// `SWITCHYARD_LIMIT_SES_BYTES`, `SWITCHYARD_LIMIT_EMAIL_BYTES`,
    /// `SWITCHYARD_IN_PROGRESS_SECS`, `SWITCHYARD_LEDGER_KEEP_SECS`,
    /// `SWITCHYARD_IN_FLIGHT_WAIT_MS`, `SWITCHYARD_HMAC_WINDOW_SECS`,
    /// `SWITCHYARD_SNS_CERT_HOST_PATTERN`, `SWITCHYARD_SNS_ALLOW_HTTP`,
    /// `SWITCHYARD_SNS_TOPIC_ARNS`, `SWITCHYARD_SNS_MAX_AGE_SECS`.
    pub fn from_env() -> Result<IngressConfig, IngressError> {
        Self::default().with_env(|k| std::env::var(k).ok())
    }

    /// Apply overrides from `get` (an environment lookup) on top of `self`.
    pub fn with_env(
        mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<IngressConfig, IngressError> {
        let num = |key: &str, into: &mut u64| -> Result<(), IngressError> {
            if let Some(v) = get(key) {
                *into = v
                    .trim()
                    .parse()
                    .map_err(|_| IngressError::Config(format!("{key} must be a number")))?;
            }
            Ok(())
        };
        if let Some(v) = get("SWITCHYARD_TOKEN_HEADER") {
            self.token_header = v;
        }
        let mut l = [
            self.limits.richpanel as u64,
            self.limits.ses as u64,
            self.limits.email as u64,
        ];
        num("SWITCHYARD_LIMIT_RICHPANEL_BYTES", &mut l[0])?;
        num("SWITCHYARD_LIMIT_SES_BYTES", &mut l[1])?;
        num("SWITCHYARD_LIMIT_EMAIL_BYTES", &mut l[2])?;
        let to_usize =
            |v: u64| usize::try_from(v).map_err(|_| IngressError::Config("limit too large".into()));
        self.limits = BodyLimits {
            richpanel: to_usize(l[0])?,
            ses: to_usize(l[1])?,
            email: to_usize(l[2])?,
        };
        num("SWITCHYARD_IN_PROGRESS_SECS", &mut self.in_progress_secs)?;
        num("SWITCHYARD_LEDGER_KEEP_SECS", &mut self.keep_secs)?;
        num("SWITCHYARD_IN_FLIGHT_WAIT_MS", &mut self.in_flight_wait_ms)?;
        num("SWITCHYARD_HMAC_WINDOW_SECS", &mut self.hmac_window_secs)?;
        if let Some(v) = get("SWITCHYARD_SNS_CERT_HOST_PATTERN") {
            self.sns.cert_host_pattern = v;
        }
        if let Some(v) = get("SWITCHYARD_SNS_ALLOW_HTTP") {
            self.sns.allow_http = matches!(v.trim(), "1" | "true" | "yes");
        }
        if let Some(v) = get("SWITCHYARD_SNS_TOPIC_ARNS") {
            let arns: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
            self.sns.topic_arns = (!arns.is_empty()).then_some(arns);
        }
        num("SWITCHYARD_SNS_MAX_AGE_SECS", &mut self.sns.max_age_secs)?;
        self.validate()?;
        Ok(self)
    }

    /// Reject settings that cannot work (empty header name, bad regex...).
    pub fn validate(&self) -> Result<(), IngressError> {
        http::HeaderName::from_bytes(self.token_header.as_bytes()).map_err(|_| {
            IngressError::Config(format!("invalid token header name {:?}", self.token_header))
        })?;
        regex::Regex::new(&self.sns.cert_host_pattern)
            .map_err(|e| IngressError::Config(format!("invalid SNS cert host pattern: {e}")))?;
        for arn in self.sns.topic_arns.iter().flatten() {
            if arn != ANY_TOPIC && crate::aws_names::topic_region(arn).is_none() {
                return Err(IngressError::Config(format!(
                    "SWITCHYARD_SNS_TOPIC_ARNS: {arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME) or *"
                )));
            }
        }
        if self.sns.max_age_secs == 0 {
            return Err(IngressError::Config(
                "SWITCHYARD_SNS_MAX_AGE_SECS must be at least 1".into(),
            ));
        }
        if self.in_progress_secs == 0 || self.keep_secs < self.in_progress_secs {
            return Err(IngressError::Config(
                "need 0 < in_progress_secs <= keep_secs".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn in_progress(&self) -> Duration {
        Duration::from_secs(self.in_progress_secs)
    }
    pub(crate) fn keep(&self) -> Duration {
        Duration::from_secs(self.keep_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults_and_rejects_garbage() {
        let cfg = IngressConfig::default()
            .with_env(|k| match k {
                "SWITCHYARD_TOKEN_HEADER" => Some("X-Tenant-Key".into()),
                "SWITCHYARD_LIMIT_EMAIL_BYTES" => Some("1024".into()),
                _ => None,
            })
            .expect("valid");
        assert_eq!(cfg.token_header, "X-Tenant-Key");
        assert_eq!(cfg.limits.email, 1024);
        assert_eq!(cfg.limits.richpanel, 256 * 1024);
        let bad = IngressConfig::default()
            .with_env(|k| (k == "SWITCHYARD_IN_PROGRESS_SECS").then(|| "soon".to_owned()));
        assert!(matches!(bad, Err(IngressError::Config(_))));
        let bad = IngressConfig::default()
            .with_env(|k| (k == "SWITCHYARD_TOKEN_HEADER").then(|| "bad header\n".to_owned()));
        assert!(matches!(bad, Err(IngressError::Config(_))));
    }
}
