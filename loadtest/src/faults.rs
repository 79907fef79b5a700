//! Timed fault injection: fake-downstream behaviour and operator flags,
//! applied at their scenario offsets while traffic flows.
use std::sync::Arc;
use std::time::Duration;

use downstream::fake::{FakeQuota, Outage};
use ports::Backend;
use serde::Serialize;
use tokio::time::Instant;

use crate::scenario::{Scenario, parse_duration};
use crate::target::{Fake, quiet};

/// A flag flip as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Flipped {
    pub name: String,
    pub value: String,
    /// Offset from the run start.
    pub at_s: f64,
    /// The fake's clock at the flip (to compare with its request log).
    pub fake_ms: Option<f64>,
}

/// Something that went wrong applying a fault (reported, not fatal).
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub at_s: f64,
    pub what: String,
    pub error: Option<String>,
}

/// Apply the scenario's faults and flag flips at their times (offsets
/// divided by `compress`). Returns what was applied and the flips.
pub async fn drive(
    scenario: Scenario,
    compress: f64,
    fake: Arc<Fake>,
    backend: Option<Backend>,
    start: Instant,
) -> (Vec<Applied>, Vec<Flipped>) {
    enum Step {
        Fault(crate::scenario::Fault),
        Flag(crate::scenario::FlagFlip),
    }
    let mut steps: Vec<(Duration, Step)> = Vec::new();
    for f in scenario.faults {
        let at = parse_duration(&f.at).unwrap_or_default().div_f64(compress);
        steps.push((at, Step::Fault(f)));
    }
    for f in scenario.flags {
        let at = parse_duration(&f.at).unwrap_or_default().div_f64(compress);
        steps.push((at, Step::Flag(f)));
    }
    steps.sort_by_key(|(at, _)| *at);
    let (mut applied, mut flips) = (Vec::new(), Vec::new());
    for (at, step) in steps {
        tokio::time::sleep_until(start + at).await;
        let at_s = start.elapsed().as_secs_f64();
        match step {
            Step::Fault(f) => {
                let what = format!(
                    "fake: latency {} ms, error rate {}, outage {:?}, force {:?}, quota {:?}/{:?} ms",
                    f.latency_ms,
                    f.error_rate,
                    f.outage,
                    f.force_status,
                    f.quota_limit,
                    f.quota_window_ms
                );
                let result = apply_fault(&fake, &f, compress).await;
                applied.push(Applied {
                    at_s,
                    what,
                    error: result.err().map(|e| format!("{e:#}")),
                });
            }
            Step::Flag(f) => {
                let what = format!("flag {} = {}", f.name, f.value);
                let Some(b) = &backend else {
                    applied.push(Applied {
                        at_s,
                        what,
                        error: Some("no backend (--data-dir) to set flags in".into()),
                    });
                    continue;
                };
                let fake_before = fake.now_ms().await.ok();
                let result = b
                    .flags
                    .set(&f.name, &f.value, "loadtest", "load-test scenario")
                    .await;
                let ok = result.is_ok();
                applied.push(Applied {
                    at_s,
                    what,
                    error: result.err().map(|e| e.to_string()),
                });
                if ok {
                    flips.push(Flipped {
                        name: f.name,
                        value: f.value,
                        at_s,
                        fake_ms: fake_before,
                    });
                }
            }
        }
    }
    (applied, flips)
}

async fn apply_fault(fake: &Fake, f: &crate::scenario::Fault, compress: f64) -> anyhow::Result<()> {
    let mut cfg = quiet();
    cfg.latency_ms = f.latency_ms;
    cfg.error_rate = f.error_rate;
    cfg.force_status = f.force_status;
    if let Some(limit) = f.quota_limit {
        cfg.richpanel_quota = Some(FakeQuota {
            limit,
            window_ms: f.quota_window_ms.unwrap_or(30_000),
        });
    }
    if let Some(o) = &f.outage {
        let now = fake.now_ms().await?;
        let len = parse_duration(o)?.div_f64(compress).as_millis() as u64;
        let from_ms = now.max(0.0) as u64;
        cfg.outages.push(Outage {
            from_ms,
            to_ms: from_ms + len,
            status: f.outage_status.unwrap_or(503),
        });
    }
    fake.set(cfg).await
}
