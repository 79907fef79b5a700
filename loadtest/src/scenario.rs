//! Scenario files (TOML): phases of constant arrival rate, the traffic mix,
//! and timed faults (fake downstream behaviour, operator flags).
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// A whole scenario. Every field but `phase` has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Distinct conversations traffic is spread over (Zipf popularity).
    pub conversations: usize,
    /// Zipf exponent: 0 = uniform, ~1 = a few very hot conversations.
    pub zipf_s: f64,
    /// Share of requests that re-send an earlier webhook unchanged.
    pub duplicate_rate: f64,
    /// Of those duplicates, the share fired concurrently with the original.
    pub concurrent_duplicate_share: f64,
    /// Share of requests that are malformed (must get a 4xx with a reason).
    pub malformed_rate: f64,
    /// Share of message texts that match an FAQ intent (auto-reply path).
    pub faq_share: f64,
    /// Share of message texts that match a Tier-0 intent (never automated).
    pub tier0_share: f64,
    pub seed: u64,
    /// Writes seen later than this after a kill-switch flip are violations.
    pub kill_switch_bound_ms: u64,
    pub mix: Mix,
    #[serde(rename = "phase")]
    pub phases: Vec<Phase>,
    #[serde(rename = "fault")]
    pub faults: Vec<Fault>,
    #[serde(rename = "flag")]
    pub flags: Vec<FlagFlip>,
    /// Extra environment for a `--spawn-serve` run (e.g. a realistic
    /// Richpanel quota instead of the harness's unthrottled default).
    pub serve_env: std::collections::BTreeMap<String, String>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "ad-hoc".into(),
            description: String::new(),
            conversations: 1000,
            zipf_s: 1.0,
            duplicate_rate: 0.05,
            concurrent_duplicate_share: 0.3,
            malformed_rate: 0.02,
            faq_share: 0.3,
            tier0_share: 0.05,
            seed: 1,
            kill_switch_bound_ms: 500,
            mix: Mix::default(),
            phases: Vec::new(),
            faults: Vec::new(),
            flags: Vec::new(),
            serve_env: Default::default(),
        }
    }
}

/// Relative weights of the valid traffic per channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    pub richpanel_minimal: f64,
    pub richpanel_rich: f64,
    pub email: f64,
    /// SES receipt notifications via SNS, signed by the harness's own
    /// certificate (`serve` must trust its host: see `sns.rs`).
    pub ses: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            richpanel_minimal: 0.2,
            richpanel_rich: 0.55,
            email: 0.25,
            ses: 0.1,
        }
    }
}

/// One stretch of constant arrival rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    #[serde(default)]
    pub name: String,
    /// Requests per second (or give `per_hour`).
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub per_hour: Option<f64>,
    /// e.g. "30s", "15m", "24h", "500ms".
    pub duration: String,
}

/// Reconfigure the fake downstreams at `at` (from the start of the run).
/// Absent fields take the harness defaults (no latency, no errors, no
/// quota), so a later fault entry with only `at` clears everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    pub at: String,
    pub latency_ms: u64,
    pub error_rate: f64,
    /// An outage of this length starting at `at` (status `outage_status`).
    pub outage: Option<String>,
    pub outage_status: Option<u16>,
    pub force_status: Option<u16>,
    /// Richpanel-style quota, e.g. 50 per 30000 ms.
    pub quota_limit: Option<u32>,
    pub quota_window_ms: Option<u64>,
}

/// Set an operator flag at `at`, e.g. `kill-switch` = `all_writes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagFlip {
    pub at: String,
    pub name: String,
    pub value: String,
}

/// A phase with its numbers resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    pub rate: f64,
    pub duration: Duration,
}

impl Scenario {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        s.validate()?;
        Ok(s)
    }

    /// A one-phase scenario from `--rate` and `--duration`.
    pub fn constant(rate: f64, duration: &str) -> anyhow::Result<Scenario> {
        let s = Scenario {
            phases: vec![Phase {
                name: "constant".into(),
                rate: Some(rate),
                per_hour: None,
                duration: duration.into(),
            }],
            ..Scenario::default()
        };
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.phases.is_empty() {
            bail!("scenario {:?} has no [[phase]]", self.name);
        }
        for phase in &self.phases {
            phase.resolve(1.0)?;
        }
        for (what, share) in [
            ("duplicate_rate", self.duplicate_rate),
            (
                "concurrent_duplicate_share",
                self.concurrent_duplicate_share,
            ),
            ("malformed_rate", self.malformed_rate),
            ("faq_share", self.faq_share),
            ("tier0_share", self.tier0_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                bail!("{what} = {share} must be between 0 and 1");
            }
        }
        if self.faq_share + self.tier0_share > 1.0 {
            bail!("faq_share + tier0_share must not exceed 1");
        }
        let mix = &self.mix;
        let weights = [
            mix.richpanel_minimal,
            mix.richpanel_rich,
            mix.email,
            mix.ses,
        ];
        if weights.iter().any(|w| !(*w >= 0.0 && w.is_finite()))
            || weights.iter().sum::<f64>() <= 0.0
        {
            bail!("mix weights must be >= 0 with a positive sum");
        }
        if self.conversations == 0 {
            bail!("conversations must be > 0");
        }
        for fault in &self.faults {
            parse_duration(&fault.at)?;
            if let Some(outage) = &fault.outage {
                parse_duration(outage)?;
            }
        }
        for flip in &self.flags {
            parse_duration(&flip.at)?;
            if flip.name == "kill-switch" && ports::KillSwitch::parse(&flip.value).is_none() {
                bail!(
                    "[[flag]] kill-switch = {:?}: expected off, auto_replies or all_writes",
                    flip.value
                );
            }
        }
        Ok(())
    }

    /// Phases with `compress` applied: durations divided by it and rates
    /// multiplied by it (same number of messages, N times faster).
    pub fn resolved(&self, compress: f64) -> anyhow::Result<Vec<Resolved>> {
        self.phases.iter().map(|p| p.resolve(compress)).collect()
    }

    pub fn total_duration(&self, compress: f64) -> anyhow::Result<Duration> {
        Ok(self.resolved(compress)?.iter().map(|p| p.duration).sum())
    }
}

impl Phase {
    fn resolve(&self, compress: f64) -> anyhow::Result<Resolved> {
        let rate = match (self.rate, self.per_hour) {
            (Some(r), None) => r,
            (None, Some(h)) => h / 3600.0,
            _ => bail!(
                "phase {:?}: give exactly one of rate (per second) or per_hour",
                self.name
            ),
        };
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("phase {:?}: rate must be positive", self.name);
        }
        if !(compress > 0.0 && compress.is_finite()) {
            bail!("--compress must be positive");
        }
        let duration = parse_duration(&self.duration)?.div_f64(compress);
        Ok(Resolved {
            rate: rate * compress,
            duration,
        })
    }
}

/// "250ms", "3s", "1.5m", "15m", "24h".
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: f64 = number
        .parse()
        .with_context(|| format!("duration {text:?}: expected e.g. 30s, 15m, 24h"))?;
    let secs = match unit.trim() {
        "ms" => amount / 1000.0,
        "s" | "" => amount,
        "m" | "min" => amount * 60.0,
        "h" => amount * 3600.0,
        other => bail!("duration {text:?}: unknown unit {other:?} (ms, s, m, h)"),
    };
    Duration::try_from_secs_f64(secs).with_context(|| format!("duration {text:?} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_garbage_is_refused() {
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("15m").ok(), Some(Duration::from_secs(900)));
        assert_eq!(
            parse_duration("24h").ok(),
            Some(Duration::from_secs(86_400))
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }

    #[test]
    fn shipped_scenarios_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("scenarios dir") {
            let path = entry.expect("entry").path();
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert!(s.total_duration(1.0).expect("resolves") > Duration::ZERO);
            seen += 1;
        }
        assert!(
            seen >= 7,
            "expected the seven shipped scenarios, found {seen}"
        );
    }

    #[test]
    fn compress_keeps_the_message_count() {
        let s = Scenario::constant(2.0, "100s").expect("valid");
        let r = s.resolved(10.0).expect("resolves")[0];
        assert_eq!(r.duration, Duration::from_secs(10));
        assert!((r.rate * r.duration.as_secs_f64() - 200.0).abs() < 1e-6);
    }
}
