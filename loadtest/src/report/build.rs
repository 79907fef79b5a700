//! The report built from the outcomes, the checker's findings and the
//! samples.
use std::collections::BTreeMap;
use std::time::Duration;

use downstream::fake::LoggedRequest;
use hdrhistogram::Histogram;

use super::{Inputs, KillSwitchReport, Pct, Report, ServeUsage, Slice, WriterUsage};
use crate::checker::{Checked, Violation};
use crate::faults::Flipped;
use crate::sample::{ProcSample, WriterSample};
use crate::send::{Outcome, new_hist};

pub fn build(inputs: Inputs<'_>) -> Report {
    let window = inputs.send_window.as_secs_f64().max(1e-9);
    let tally = Tally::of(inputs.outcomes, window);
    let checked = CheckedNumbers::of(inputs.checked);
    let mut violations = inputs.extra_violations;
    violations.extend(checked.violations);
    let acked = tally.acked;
    Report {
        scenario: inputs.scenario.name.clone(),
        description: inputs.scenario.description.clone(),
        compress: inputs.compress,
        target: inputs.target,
        backend: inputs.backend,
        started_at: inputs.started_at,
        verdict: match (violations.is_empty(), inputs.checked.is_some()) {
            (false, _) => "fail",
            (true, true) => "pass",
            (true, false) => "unchecked",
        },
        planned: inputs.planned,
        requests: inputs.outcomes.len() as u64,
        send_window_s: window,
        offered_rate: inputs.outcomes.len() as f64 / window,
        achieved_ack_rate: acked as f64 / tally.last_done.as_secs_f64().max(1e-9),
        acked_2xx: acked,
        duplicates_sent: inputs.outcomes.iter().filter(|o| o.duplicate).count() as u64,
        distinct_events: distinct_events(inputs.outcomes),
        ack_latency_ms: Pct::of(&tally.latency),
        ack_latency_by_route_status: tally
            .by_route_status
            .iter()
            .map(|(k, h)| (k.clone(), Pct::of(h)))
            .collect(),
        outcomes_by_kind: tally.by_kind,
        errors_by_kind: tally.errors,
        end_to_end_ms: checked.end_to_end,
        end_to_end_events_per_s: checked.end_to_end_rate,
        drained: inputs.drained,
        drain_s: inputs.drain.as_secs_f64(),
        log_streams: checked.streams,
        log_events: checked.events,
        dlq: checked.dlq,
        downstream_calls: downstream_calls(inputs.fake_log),
        kill_switch: kill_switch_reports(inputs.flips, &checked.kill_switch_ms),
        serve: inputs.serve.map(|usage| serve_usage(usage, acked)),
        writer: inputs.writer.map(|writer| writer_usage(writer, acked)),
        faults: inputs.applied,
        violations,
        timeline: tally.timeline.slices(),
        latency_distribution: latency_distribution(&tally.latency),
        queue_depth: inputs.queue,
        backlog: None,
    }
}

/// The outcomes counted and timed, by route and status, kind and error.
struct Tally {
    /// Every request's latency, µs.
    latency: Histogram<u64>,
    by_route_status: BTreeMap<String, Histogram<u64>>,
    by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    errors: BTreeMap<String, u64>,
    acked: u64,
    /// When the last answer came, from the start.
    last_done: Duration,
    timeline: Timeline,
}

impl Tally {
    fn of(outcomes: &[Outcome], window_s: f64) -> Tally {
        let mut tally = Tally {
            latency: new_hist(),
            by_route_status: BTreeMap::new(),
            by_kind: BTreeMap::new(),
            errors: BTreeMap::new(),
            acked: 0,
            last_done: Duration::ZERO,
            timeline: Timeline::new(window_s),
        };
        for outcome in outcomes {
            tally.add(outcome);
        }
        tally
    }

    fn add(&mut self, outcome: &Outcome) {
        let us = outcome.latency().as_micros().max(1) as u64;
        let _ = self.latency.record(us);
        let status = if outcome.status == 0 {
            "none".to_owned()
        } else {
            outcome.status.to_string()
        };
        let _ = self
            .by_route_status
            .entry(format!("{} {status}", outcome.route.as_str()))
            .or_insert_with(new_hist)
            .record(us);
        *self
            .by_kind
            .entry(outcome.kind.as_str().into())
            .or_default()
            .entry(status)
            .or_default() += 1;
        let ok = (200..300).contains(&outcome.status);
        if ok {
            self.acked += 1;
        } else {
            let error = outcome.error.clone().unwrap_or_else(|| "unknown".into());
            let tag = if outcome.kind.malformed() {
                format!("expected:{error}")
            } else {
                error
            };
            *self.errors.entry(tag).or_default() += 1;
        }
        self.last_done = self.last_done.max(outcome.done);
        self.timeline.add(outcome, ok, us);
    }
}

/// Requests by intended send time, in (at most ~120) slices of at least 1 s.
struct Timeline {
    slice_s: f64,
    slices: Vec<SliceTally>,
}

#[derive(Debug)]
struct SliceTally {
    sent: u64,
    ok: u64,
    /// Failures of valid requests (malformed ones are meant to fail).
    errors: u64,
    latency: Histogram<u64>,
}

impl Timeline {
    fn new(window_s: f64) -> Timeline {
        let slice_s = (window_s / 120.0).max(1.0);
        let count = (window_s / slice_s).ceil() as usize + 1;
        let slices = (0..count)
            .map(|_| SliceTally {
                sent: 0,
                ok: 0,
                errors: 0,
                latency: new_hist(),
            })
            .collect();
        Timeline { slice_s, slices }
    }

    fn add(&mut self, outcome: &Outcome, ok: bool, latency_us: u64) {
        let last = self.slices.len() - 1;
        let index = ((outcome.intended.as_secs_f64() / self.slice_s) as usize).min(last);
        let slice = &mut self.slices[index];
        slice.sent += 1;
        if ok {
            slice.ok += 1
        } else if !outcome.kind.malformed() {
            slice.errors += 1
        }
        let _ = slice.latency.record(latency_us);
    }

    fn slices(&self) -> Vec<Slice> {
        self.slices
            .iter()
            .enumerate()
            .filter(|(_, slice)| slice.sent > 0)
            .map(|(index, slice)| Slice {
                t_s: index as f64 * self.slice_s,
                sent: slice.sent,
                ok: slice.ok,
                errors: slice.errors,
                p50_ms: slice.latency.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: slice.latency.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: slice.latency.max() as f64 / 1000.0,
            })
            .collect()
    }
}

/// (percentile, latency ms) at fixed percentiles, for the chart.
fn latency_distribution(latency: &Histogram<u64>) -> Vec<(f64, f64)> {
    [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0]
        .iter()
        .map(|q| (q * 100.0, latency.value_at_quantile(*q) as f64 / 1000.0))
        .collect()
}

/// Distinct event ids among the 2xx answers.
fn distinct_events(outcomes: &[Outcome]) -> u64 {
    outcomes
        .iter()
        .filter(|o| (200..300).contains(&o.status))
        .filter_map(|o| o.event_id.as_deref())
        .collect::<std::collections::HashSet<_>>()
        .len() as u64
}

/// `METHOD /path/pattern STATUS` → count.
fn downstream_calls(fake_log: &[LoggedRequest]) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for request in fake_log {
        *calls
            .entry(format!(
                "{} {} {}",
                request.method,
                pattern(&request.path),
                request.status
            ))
            .or_default() += 1;
    }
    calls
}

/// The checker's numbers (zero when it did not run).
struct CheckedNumbers {
    violations: Vec<Violation>,
    end_to_end: Pct,
    end_to_end_rate: f64,
    streams: usize,
    events: u64,
    dlq: u64,
    kill_switch_ms: Vec<Option<f64>>,
}

impl CheckedNumbers {
    fn of(checked: Option<&Checked>) -> CheckedNumbers {
        match checked {
            Some(c) => CheckedNumbers {
                violations: c.violations.clone(),
                end_to_end: Pct::of(&c.e2e),
                end_to_end_rate: c.e2e_events as f64 / c.e2e_span.as_secs_f64().max(1e-9),
                streams: c.streams,
                events: c.events,
                dlq: c.dlq,
                kill_switch_ms: c.kill_switch_ms.clone(),
            },
            None => CheckedNumbers {
                violations: Vec::new(),
                end_to_end: Pct::default(),
                end_to_end_rate: 0.0,
                streams: 0,
                events: 0,
                dlq: 0,
                kill_switch_ms: Vec::new(),
            },
        }
    }
}

/// Each all_writes flip with the last write after it.
fn kill_switch_reports(flips: &[Flipped], last_write_ms: &[Option<f64>]) -> Vec<KillSwitchReport> {
    flips
        .iter()
        .filter(|f| f.name == "kill-switch" && f.value == "all_writes")
        .zip(last_write_ms.iter().copied().chain(std::iter::repeat(None)))
        .map(|(flip, ms)| KillSwitchReport {
            flip_at_s: flip.at_s,
            last_write_after_ms: ms,
        })
        .collect()
}

fn serve_usage((pid, before, after): (u32, ProcSample, ProcSample), acked: u64) -> ServeUsage {
    let cpu = after.cpu_s - before.cpu_s;
    ServeUsage {
        pid,
        cpu_s: cpu,
        cpu_per_event_us: cpu * 1e6 / (acked.max(1) as f64),
        rss_end_mb: after.rss_kb as f64 / 1024.0,
        rss_peak_mb: after.hwm_kb as f64 / 1024.0,
    }
}

fn writer_usage(writer: WriterSample, acked: u64) -> WriterUsage {
    let per_webhook = |x: f64| x / (acked.max(1) as f64);
    WriterUsage {
        totals: writer,
        jobs_per_commit: writer.jobs / writer.commits.max(1.0),
        jobs_per_webhook: per_webhook(writer.jobs),
        wal_frames_per_webhook: per_webhook(writer.wal_frames),
    }
}

/// `/v1/tickets/lt-x-3/add-tags?x` → `/v1/tickets/{id}/add-tags`.
fn pattern(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|seg| {
            let version = seg.len() <= 3 && seg.starts_with('v');
            if !version && seg.chars().any(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_lose_their_ids() {
        assert_eq!(
            super::pattern("/v1/tickets/lt-ab-3/add-tags?x=1"),
            "/v1/tickets/{id}/add-tags"
        );
        assert_eq!(
            super::pattern("/admin/api/2024-01/orders.json"),
            "/admin/api/{id}/orders.json"
        );
    }
}
