//! [`DownstreamConfig`]: base URLs, credentials and the tuning of every
//! safety layer. Defaults → file (it is a serde struct; embed it in the
//! operator's config) → environment ([`DownstreamConfig::with_env`]).
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Downstream;

/// A credential. Never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(pub String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Retry tuning (see `layers::retry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: usize,
    /// First backoff delay; it doubles per retry (with full jitter).
    pub base_delay_ms: u64,
    /// Longest backoff delay.
    pub max_delay_ms: u64,
    /// Retries allowed as a share of recent requests (tower `TpsBudget`).
    pub budget_percent: f32,
    /// Retries per second always allowed by the budget.
    pub budget_min_per_sec: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 3,
            base_delay_ms: 200,
            max_delay_ms: 5_000,
            budget_percent: 0.2,
            budget_min_per_sec: 10,
        }
    }
}

/// Circuit-breaker tuning (see `layers::breaker`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakerConfig {
    /// Length of the rolling window of outcomes.
    pub window_ms: u64,
    /// Fewer calls than this in the window never open the breaker.
    pub min_requests: u32,
    /// Failure share (0–1) at or above which the breaker opens.
    pub error_rate: f64,
    /// How long it stays open before letting one probe through.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window_ms: 30_000,
            min_requests: 10,
            error_rate: 0.5,
            open_ms: 15_000,
        }
    }
}

/// Token-bucket quota: `requests` per `period_ms`, at most `burst` at once.
/// The bucket releases one token every `period_ms / requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaConfig {
    /// Tokens per period.
    pub requests: u32,
    /// The period.
    pub period_ms: u64,
    /// Most tokens held at once.
    pub burst: u32,
}

/// One downstream's endpoint and layer tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointConfig {
    /// Richpanel: `https://api.richpanel.com`; OpenAI-compatible: the base
    /// that `/chat/completions` is appended to (`https://api.openai.com/v1`);
    /// Shopify: `https://<shop>.myshopify.com`.
    pub base_url: String,
    /// `None` ⇒ the secret named by [`Downstream`] in the secrets port is
    /// tried; none there either ⇒ writes are shadowed.
    pub api_key: Option<ApiKey>,
    /// Bound on one call, per attempt.
    pub timeout_ms: u64,
    /// Retry tuning.
    pub retry: RetryConfig,
    /// Circuit-breaker tuning.
    pub breaker: BreakerConfig,
    /// Quota (token bucket).
    pub quota: QuotaConfig,
}

/// Everything the downstream clients and their safety layers need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DownstreamConfig {
    /// Richpanel REST.
    pub richpanel: EndpointConfig,
    /// OpenAI-compatible chat completions.
    pub openai: EndpointConfig,
    /// Chat model for classification.
    pub openai_model: String,
    /// Shopify Admin REST.
    pub shopify: EndpointConfig,
    /// Shopify Admin REST API version, e.g. `2025-01`.
    pub shopify_api_version: String,
    /// How long a flag read is reused. Kill-switch propagation is at most
    /// this plus one flag-store read; keep it ≤ 250 ms.
    pub flag_cache_ttl_ms: u64,
    /// Hard floor from the environment (`SWITCHYARD_KILL_SWITCH`): the
    /// effective kill switch is the stricter of this and the flag store.
    pub kill_switch_floor: Option<String>,
    /// Hard floor (`SWITCHYARD_SHADOW=on`): shadow mode whatever the store says.
    pub shadow_floor: bool,
    /// Longest time a call may wait in memory for a token or a `Retry-After`;
    /// past it the call fails with `RateLimited` and the worker retries the
    /// message later through queue visibility.
    pub max_wait_ms: u64,
    /// With a fleet's shared buckets (AWS backend): how many processes
    /// this one assumes share each quota while the shared bucket cannot be
    /// reached; it then keeps to quota / `fleet_size` on its own.
    pub fleet_size: u32,
}

impl Default for DownstreamConfig {
    fn default() -> Self {
        let endpoint = |base: &str, timeout_ms, quota| EndpointConfig {
            base_url: base.to_owned(),
            api_key: None,
            timeout_ms,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            quota,
        };
        DownstreamConfig {
            // Richpanel documents 50 requests per 30 s per key. We use 48 per
            // 30 s with a burst of 2: GCRA then puts at most 49 calls in any
            // 30 s window (even a sliding one), one spare slot absorbs
            // network jitter, and the burst of 2 absorbs timer lateness so a
            // backlog drains at 96% of the documented quota with no 429.
            richpanel: endpoint(
                "https://api.richpanel.com",
                10_000,
                QuotaConfig {
                    requests: 48,
                    period_ms: 30_000,
                    burst: 2,
                },
            ),
            // Conservative: 500 requests per minute (the lowest paid tier).
            openai: endpoint(
                "https://api.openai.com/v1",
                20_000,
                QuotaConfig {
                    requests: 500,
                    period_ms: 60_000,
                    burst: 10,
                },
            ),
            openai_model: "gpt-4o-mini".to_owned(),
            // Shopify REST: leaky bucket of 40, leaking 2 per second.
            shopify: endpoint(
                "",
                10_000,
                QuotaConfig {
                    requests: 2,
                    period_ms: 1_000,
                    burst: 40,
                },
            ),
            shopify_api_version: "2025-01".to_owned(),
            flag_cache_ttl_ms: 200,
            kill_switch_floor: None,
            shadow_floor: false,
            max_wait_ms: 5_000,
            // The worker Lambda's default MaximumConcurrency
            // (deploy/template.yaml).
            fleet_size: 5,
        }
    }
}

/// An environment value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    /// The variable.
    pub name: String,
    /// What is wrong with its value.
    pub problem: String,
}

impl DownstreamConfig {
    /// Defaults overridden by the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::default().with_env()
    }

    /// Apply the process environment on top of `self`.
    pub fn with_env(self) -> Result<Self, ConfigError> {
        self.with_lookup(|k| std::env::var(k).ok())
    }

    /// Apply variables from `lookup` (testable form of [`Self::with_env`]).
    /// Names: `SWITCHYARD_<DS>_{BASE_URL,API_KEY,TIMEOUT_MS,RETRIES,`
    /// `BREAKER_ERROR_RATE,BREAKER_MIN_REQUESTS,BREAKER_OPEN_MS,`
    /// `QUOTA_REQUESTS,QUOTA_PERIOD_MS,QUOTA_BURST}` with `<DS>` one of
    /// `RICHPANEL`, `OPENAI`, `SHOPIFY`; `SWITCHYARD_OPENAI_MODEL`,
    /// `SWITCHYARD_SHOPIFY_API_VERSION`, `SWITCHYARD_FLAG_CACHE_TTL_MS`,
    /// `SWITCHYARD_DOWNSTREAM_MAX_WAIT_MS`, `SWITCHYARD_FLEET_SIZE`, `SWITCHYARD_KILL_SWITCH`
    /// (`off|auto_replies|all_writes`), `SWITCHYARD_SHADOW` (`on|off`).
    pub fn with_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        for ds in Downstream::ALL {
            let prefix = format!("SWITCHYARD_{}_", ds.as_str().to_ascii_uppercase());
            let ep = self.endpoint_mut(ds);
            let var = |suffix: &str| {
                let name = format!("{prefix}{suffix}");
                get(&name).map(|v| (name, v))
            };
            if let Some((_, v)) = var("BASE_URL") {
                ep.base_url = v.trim_end_matches('/').to_owned();
            }
            if let Some((_, v)) = var("API_KEY") {
                ep.api_key = Some(ApiKey(v));
            }
            if let Some((n, v)) = var("TIMEOUT_MS") {
                ep.timeout_ms = parse(&n, &v)?;
            }
            if let Some((n, v)) = var("RETRIES") {
                ep.retry.max_retries = parse(&n, &v)?;
            }
            if let Some((n, v)) = var("BREAKER_ERROR_RATE") {
                ep.breaker.error_rate = parse(&n, &v)?;
            }
            if let Some((n, v)) = var("BREAKER_MIN_REQUESTS") {
                ep.breaker.min_requests = parse(&n, &v)?;
            }
            if let Some((n, v)) = var("BREAKER_OPEN_MS") {
                ep.breaker.open_ms = parse(&n, &v)?;
            }
            if let Some((n, v)) = var("QUOTA_REQUESTS") {
                ep.quota.requests = parse(&n, &v)?;
            }
            if let Some((n, v)) = var("QUOTA_PERIOD_MS") {
                ep.quota.period_ms = parse(&n, &v)?;
            }
            if let Some((n, v)) = var("QUOTA_BURST") {
                ep.quota.burst = parse(&n, &v)?;
            }
        }
        if let Some(v) = get("SWITCHYARD_OPENAI_MODEL") {
            self.openai_model = v;
        }
        if let Some(v) = get("SWITCHYARD_SHOPIFY_API_VERSION") {
            self.shopify_api_version = v;
        }
        if let Some(v) = get("SWITCHYARD_FLAG_CACHE_TTL_MS") {
            self.flag_cache_ttl_ms = parse("SWITCHYARD_FLAG_CACHE_TTL_MS", &v)?;
        }
        if let Some(v) = get("SWITCHYARD_DOWNSTREAM_MAX_WAIT_MS") {
            self.max_wait_ms = parse("SWITCHYARD_DOWNSTREAM_MAX_WAIT_MS", &v)?;
        }
        if let Some(v) = get("SWITCHYARD_FLEET_SIZE") {
            self.fleet_size = parse("SWITCHYARD_FLEET_SIZE", &v)?;
        }
        if let Some(v) = get("SWITCHYARD_KILL_SWITCH") {
            if ports::KillSwitch::parse(&v).is_none() {
                return Err(ConfigError {
                    name: "SWITCHYARD_KILL_SWITCH".into(),
                    problem: format!("{v:?} is not off, auto_replies or all_writes"),
                });
            }
            self.kill_switch_floor = Some(v);
        }
        if let Some(v) = get("SWITCHYARD_SHADOW") {
            self.shadow_floor = match v.as_str() {
                "on" | "1" | "true" => true,
                "off" | "0" | "false" => false,
                _ => {
                    return Err(ConfigError {
                        name: "SWITCHYARD_SHADOW".into(),
                        problem: format!("{v:?} is not on or off"),
                    });
                }
            };
        }
        self.validate()?;
        Ok(self)
    }

    /// Reject settings no layer can work with (zero quotas, rates outside 0–1).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for ds in Downstream::ALL {
            let ep = self.endpoint(ds);
            let bad = |problem: &str| ConfigError {
                name: ds.as_str().into(),
                problem: problem.into(),
            };
            if ep.quota.requests == 0 || ep.quota.period_ms == 0 || ep.quota.burst == 0 {
                return Err(bad("quota requests, period and burst must be > 0"));
            }
            if !(ep.breaker.error_rate > 0.0 && ep.breaker.error_rate <= 1.0) {
                return Err(bad("breaker error rate must be in (0, 1]"));
            }
            if ep.timeout_ms == 0 {
                return Err(bad("timeout must be > 0"));
            }
            if !(0.0..=1000.0).contains(&ep.retry.budget_percent)
                || ep.retry.budget_min_per_sec >= i32::MAX as u32
            {
                return Err(bad("retry budget percent must be in [0, 1000]"));
            }
        }
        if self.fleet_size == 0 {
            return Err(ConfigError {
                name: "SWITCHYARD_FLEET_SIZE".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The endpoint config of `ds`.
    pub fn endpoint(&self, ds: Downstream) -> &EndpointConfig {
        match ds {
            Downstream::Richpanel => &self.richpanel,
            Downstream::Openai => &self.openai,
            Downstream::Shopify => &self.shopify,
        }
    }

    /// The endpoint config of `ds`, to change.
    pub fn endpoint_mut(&mut self, ds: Downstream) -> &mut EndpointConfig {
        match ds {
            Downstream::Richpanel => &mut self.richpanel,
            Downstream::Openai => &mut self.openai,
            Downstream::Shopify => &mut self.shopify,
        }
    }

    /// Point every downstream at one base (the fake server), for tests and demos.
    pub fn pointed_at(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        self.richpanel.base_url = base.to_owned();
        self.openai.base_url = format!("{base}/v1");
        self.shopify.base_url = base.to_owned();
        self
    }
}

fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError {
        name: name.to_owned(),
        problem: format!("cannot parse {v:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn env_overrides_and_floors() {
        let env: HashMap<&str, &str> = [
            ("SWITCHYARD_RICHPANEL_BASE_URL", "http://127.0.0.1:9/"),
            ("SWITCHYARD_RICHPANEL_API_KEY", "k"),
            ("SWITCHYARD_RICHPANEL_QUOTA_PERIOD_MS", "3000"),
            ("SWITCHYARD_KILL_SWITCH", "all_writes"),
            ("SWITCHYARD_SHADOW", "on"),
        ]
        .into();
        let cfg = DownstreamConfig::default()
            .with_lookup(|k| env.get(k).map(|v| v.to_string()))
            .expect("valid");
        assert_eq!(cfg.richpanel.base_url, "http://127.0.0.1:9");
        assert_eq!(cfg.richpanel.api_key, Some(ApiKey("k".into())));
        assert_eq!(cfg.richpanel.quota.period_ms, 3000);
        assert_eq!(cfg.kill_switch_floor.as_deref(), Some("all_writes"));
        assert!(cfg.shadow_floor);
        assert!(cfg.openai.api_key.is_none());
        assert!(!format!("{cfg:?}").contains("\"k\""));
    }

    #[test]
    fn bad_values_are_named() {
        let err = DownstreamConfig::default()
            .with_lookup(|k| (k == "SWITCHYARD_KILL_SWITCH").then(|| "yes".to_owned()))
            .expect_err("invalid");
        assert_eq!(err.name, "SWITCHYARD_KILL_SWITCH");
        let err = DownstreamConfig::default()
            .with_lookup(|k| (k == "SWITCHYARD_OPENAI_TIMEOUT_MS").then(|| "soon".to_owned()))
            .expect_err("invalid");
        assert_eq!(err.name, "SWITCHYARD_OPENAI_TIMEOUT_MS");
    }
}
