//! The run's numbers: built from the outcomes, printed as a text summary,
//! written as JSON (and HTML by `html.rs`).
use std::collections::BTreeMap;
use std::time::Duration;

use downstream::fake::LoggedRequest;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::checker::{Checked, Violation};
use crate::faults::{Applied, Flipped};
use crate::sample::{ProcSample, QueueSample, WriterSample};
use crate::send::{Outcome, new_hist};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pct {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Pct {
    pub fn of(h: &Histogram<u64>) -> Pct {
        let q = |x| h.value_at_quantile(x) as f64 / 1000.0;
        Pct {
            count: h.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

/// One slice of the timeline (by intended send time).
#[derive(Debug, Clone, Serialize)]
pub struct Slice {
    pub t_s: f64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServeUsage {
    pub pid: u32,
    pub cpu_s: f64,
    /// serve CPU per acknowledged webhook, µs (ingress + worker).
    pub cpu_per_event_us: f64,
    pub rss_end_mb: f64,
    pub rss_peak_mb: f64,
}

/// What serve's SQLite writer did over the run (embedded backend), per
/// acknowledged webhook: the durable-write work behind each message.
#[derive(Debug, Clone, Serialize)]
pub struct WriterUsage {
    #[serde(flatten)]
    pub totals: WriterSample,
    pub jobs_per_commit: f64,
    pub jobs_per_webhook: f64,
    pub wal_frames_per_webhook: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KillSwitchReport {
    pub flip_at_s: f64,
    /// Last downstream write after the flip, ms after it (null: none).
    pub last_write_after_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub compress: f64,
    pub target: String,
    pub backend: String,
    pub started_at: String,
    pub verdict: &'static str,
    pub planned: u64,
    pub requests: u64,
    pub send_window_s: f64,
    pub offered_rate: f64,
    pub achieved_ack_rate: f64,
    pub acked_2xx: u64,
    /// Requests that re-sent an earlier webhook (incl. concurrent twins).
    pub duplicates_sent: u64,
    /// Distinct event ids among the 2xx answers.
    pub distinct_events: u64,
    pub ack_latency_ms: Pct,
    pub ack_latency_by_route_status: BTreeMap<String, Pct>,
    pub outcomes_by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub end_to_end_ms: Pct,
    pub end_to_end_events_per_s: f64,
    pub drained: bool,
    pub drain_s: f64,
    pub log_streams: usize,
    pub log_events: u64,
    pub dlq: u64,
    pub downstream_calls: BTreeMap<String, u64>,
    pub kill_switch: Vec<KillSwitchReport>,
    pub serve: Option<ServeUsage>,
    pub writer: Option<WriterUsage>,
    pub faults: Vec<Applied>,
    pub violations: Vec<Violation>,
    pub timeline: Vec<Slice>,
    pub latency_distribution: Vec<(f64, f64)>,
    pub queue_depth: Vec<QueueSample>,
    /// `--backlog`: the worker alone draining everything acked.
    pub backlog: Option<Backlog>,
}

/// The backlog drain (`--backlog`): serve's worker started only after the
/// traffic was sent, so the generator did not compete with it.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub messages: u64,
    pub log_events: u64,
    pub drain_s: f64,
    pub messages_per_s: f64,
    pub log_events_per_s: f64,
}

impl Report {
    /// Fill in the backlog drain numbers from the drain just measured.
    pub fn with_backlog(mut self) -> Report {
        let s = self.drain_s.max(1e-9);
        self.backlog = Some(Backlog {
            messages: self.distinct_events,
            log_events: self.log_events,
            drain_s: self.drain_s,
            messages_per_s: self.distinct_events as f64 / s,
            log_events_per_s: self.log_events as f64 / s,
        });
        self
    }
}

/// Everything the report is built from.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub scenario: &'a crate::scenario::Scenario,
    pub compress: f64,
    pub target: String,
    pub backend: String,
    pub started_at: String,
    pub planned: u64,
    pub send_window: Duration,
    pub outcomes: &'a [Outcome],
    pub checked: Option<&'a Checked>,
    pub extra_violations: Vec<Violation>,
    pub drained: bool,
    pub drain: Duration,
    pub fake_log: &'a [LoggedRequest],
    pub flips: &'a [Flipped],
    pub applied: Vec<Applied>,
    pub queue: Vec<QueueSample>,
    pub serve: Option<(u32, ProcSample, ProcSample)>,
    /// serve's writer counters' growth over the run.
    pub writer: Option<WriterSample>,
}

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

/// The text summary.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    traffic_text(r, &mut s);
    log_text(r, &mut s);
    resources_text(r, &mut s);
    downstream_text(r, &mut s);
    invariants_text(r, &mut s);
    s
}

/// A latency summary on one line.
fn pct_text(p: &Pct) -> String {
    format!(
        "p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms (n={})",
        p.p50, p.p90, p.p99, p.p999, p.max, p.count
    )
}

/// What was sent, how fast it was acknowledged, what failed.
fn traffic_text(r: &Report, s: &mut String) {
    *s += &format!(
        "scenario {} (compress ×{}) against {} [{}]\n",
        r.scenario, r.compress, r.target, r.backend
    );
    *s += &format!(
        "requests {} (planned {}, {} duplicates) over {:.1} s: offered {:.0}/s, acked 2xx {} at {:.0}/s\n",
        r.requests,
        r.planned,
        r.duplicates_sent,
        r.send_window_s,
        r.offered_rate,
        r.acked_2xx,
        r.achieved_ack_rate
    );
    *s += &format!(
        "ack latency (from intended send time): {}\n",
        pct_text(&r.ack_latency_ms)
    );
    for (route_status, pct) in &r.ack_latency_by_route_status {
        *s += &format!("  {route_status:<16} {}\n", pct_text(pct));
    }
    *s += &format!(
        "outcomes by kind: {}\n",
        serde_json::to_string(&r.outcomes_by_kind).unwrap_or_default()
    );
    if !r.errors_by_kind.is_empty() {
        *s += &format!(
            "non-2xx by kind: {}\n",
            serde_json::to_string(&r.errors_by_kind).unwrap_or_default()
        );
    }
}

/// End to end, the drain and what the log holds.
fn log_text(r: &Report, s: &mut String) {
    *s += &format!(
        "end to end (intended send → event in log): {}; {:.0} events/s; drained: {} in {:.1} s\n",
        pct_text(&r.end_to_end_ms),
        r.end_to_end_events_per_s,
        r.drained,
        r.drain_s
    );
    *s += &format!(
        "log: {} streams, {} events; DLQ {}\n",
        r.log_streams, r.log_events, r.dlq
    );
    if let Some(b) = &r.backlog {
        *s += &format!(
            "backlog drain (worker alone, started after sending): {} messages, {} log events in {:.2} s = {:.0} messages/s, {:.0} log events/s\n",
            b.messages, b.log_events, b.drain_s, b.messages_per_s, b.log_events_per_s
        );
    }
}

/// serve's CPU and memory, and its SQLite writer's work.
fn resources_text(r: &Report, s: &mut String) {
    if let Some(u) = &r.serve {
        *s += &format!(
            "serve pid {}: CPU {:.2} s = {:.0} µs per acked webhook; RSS end {:.1} MB, peak (VmHWM) {:.1} MB\n",
            u.pid, u.cpu_s, u.cpu_per_event_us, u.rss_end_mb, u.rss_peak_mb
        );
    }
    if let Some(w) = &r.writer {
        *s += &format!(
            "sqlite writer: {:.0} commits ({:.1} jobs each, {:.2} s in COMMIT); per acked webhook {:.2} write jobs, {:.1} WAL frames\n",
            w.totals.commits,
            w.jobs_per_commit,
            w.totals.commit_s,
            w.jobs_per_webhook,
            w.wal_frames_per_webhook
        );
    }
}

/// Downstream calls, kill-switch flips and the faults applied.
fn downstream_text(r: &Report, s: &mut String) {
    // The classifier is a POST that writes nothing.
    let count = |f: &dyn Fn(&str) -> bool| -> u64 {
        r.downstream_calls
            .iter()
            .filter(|(call, _)| f(call))
            .map(|(_, n)| n)
            .sum()
    };
    let classifier = count(&|call| call.contains("/chat/completions"));
    let writes = count(&|call| !call.starts_with("GET") && !call.contains("/chat/completions"));
    *s += &format!(
        "downstream calls: {} ({} writes, {} classifier)\n",
        r.downstream_calls.values().sum::<u64>(),
        writes,
        classifier
    );
    for flip in &r.kill_switch {
        *s += &format!(
            "kill switch at {:.1} s: last write after it: {:?} ms\n",
            flip.flip_at_s, flip.last_write_after_ms
        );
    }
    for fault in &r.faults {
        *s += &format!(
            "fault at {:.1} s: {}{}\n",
            fault.at_s,
            fault.what,
            fault
                .error
                .as_ref()
                .map(|e| format!(" — FAILED: {e}"))
                .unwrap_or_default()
        );
    }
}

fn invariants_text(r: &Report, s: &mut String) {
    if r.verdict == "unchecked" {
        *s += "invariants: NOT CHECKED (--no-check, or no backend to read)\n";
    } else if r.violations.is_empty() {
        *s += "invariants: all green\n";
    } else {
        *s += &format!("INVARIANT VIOLATIONS ({}):\n", r.violations.len());
        for violation in r.violations.iter().take(20) {
            *s += &format!(
                "  [{}] {}: {}\n",
                violation.invariant,
                violation.conversation.as_deref().unwrap_or("-"),
                violation.detail
            );
        }
    }
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
