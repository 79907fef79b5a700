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

pub fn build(i: Inputs<'_>) -> Report {
    let mut all = new_hist();
    let mut by_rs: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let window = i.send_window.as_secs_f64().max(1e-9);
    let slice = (window / 120.0).max(1.0);
    let n_slices = (window / slice).ceil() as usize + 1;
    let mut slices: Vec<(u64, u64, u64, Histogram<u64>)> =
        (0..n_slices).map(|_| (0, 0, 0, new_hist())).collect();
    let mut acked = 0;
    let mut last_done = Duration::ZERO;
    for o in i.outcomes {
        let us = o.latency().as_micros().max(1) as u64;
        let _ = all.record(us);
        let status = if o.status == 0 {
            "none".to_owned()
        } else {
            o.status.to_string()
        };
        let _ = by_rs
            .entry(format!("{} {status}", o.route.as_str()))
            .or_insert_with(new_hist)
            .record(us);
        *kinds
            .entry(o.kind.as_str().into())
            .or_default()
            .entry(status)
            .or_default() += 1;
        let ok = (200..300).contains(&o.status);
        if ok {
            acked += 1;
        } else {
            let e = o.error.clone().unwrap_or_else(|| "unknown".into());
            let tag = if o.kind.malformed() {
                format!("expected:{e}")
            } else {
                e
            };
            *errors.entry(tag).or_default() += 1;
        }
        last_done = last_done.max(o.done);
        let k = ((o.intended.as_secs_f64() / slice) as usize).min(n_slices - 1);
        let s = &mut slices[k];
        s.0 += 1;
        if ok {
            s.1 += 1
        } else if !o.kind.malformed() {
            s.2 += 1
        }
        let _ = s.3.record(us);
    }
    let timeline = slices
        .iter()
        .enumerate()
        .filter(|(_, s)| s.0 > 0)
        .map(|(k, s)| Slice {
            t_s: k as f64 * slice,
            sent: s.0,
            ok: s.1,
            errors: s.2,
            p50_ms: s.3.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: s.3.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: s.3.max() as f64 / 1000.0,
        })
        .collect();
    let latency_distribution = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0]
        .iter()
        .map(|q| (q * 100.0, all.value_at_quantile(*q) as f64 / 1000.0))
        .collect();
    let mut downstream_calls = BTreeMap::new();
    for r in i.fake_log {
        *downstream_calls
            .entry(format!("{} {} {}", r.method, pattern(&r.path), r.status))
            .or_default() += 1;
    }
    let mut violations = i.extra_violations;
    let (e2e, e2e_rate, streams, events, dlq, ks) = match i.checked {
        Some(c) => {
            violations.extend(c.violations.iter().cloned());
            let rate = c.e2e_events as f64 / c.e2e_span.as_secs_f64().max(1e-9);
            (
                Pct::of(&c.e2e),
                rate,
                c.streams,
                c.events,
                c.dlq,
                c.kill_switch_ms.clone(),
            )
        }
        None => (Pct::default(), 0.0, 0, 0, 0, Vec::new()),
    };
    let kill_switch = i
        .flips
        .iter()
        .filter(|f| f.name == "kill-switch" && f.value == "all_writes")
        .zip(ks.iter().copied().chain(std::iter::repeat(None)))
        .map(|(f, ms)| KillSwitchReport {
            flip_at_s: f.at_s,
            last_write_after_ms: ms,
        })
        .collect();
    let serve = i.serve.map(|(pid, before, after)| {
        let cpu = after.cpu_s - before.cpu_s;
        ServeUsage {
            pid,
            cpu_s: cpu,
            cpu_per_event_us: cpu * 1e6 / (acked.max(1) as f64),
            rss_end_mb: after.rss_kb as f64 / 1024.0,
            rss_peak_mb: after.hwm_kb as f64 / 1024.0,
        }
    });
    let writer = i.writer.map(|w| {
        let per = |x: f64| x / (acked.max(1) as f64);
        WriterUsage {
            totals: w,
            jobs_per_commit: w.jobs / w.commits.max(1.0),
            jobs_per_webhook: per(w.jobs),
            wal_frames_per_webhook: per(w.wal_frames),
        }
    });
    Report {
        scenario: i.scenario.name.clone(),
        description: i.scenario.description.clone(),
        compress: i.compress,
        target: i.target,
        backend: i.backend,
        started_at: i.started_at,
        verdict: match (violations.is_empty(), i.checked.is_some()) {
            (false, _) => "fail",
            (true, true) => "pass",
            (true, false) => "unchecked",
        },
        planned: i.planned,
        requests: i.outcomes.len() as u64,
        send_window_s: window,
        offered_rate: i.outcomes.len() as f64 / window,
        achieved_ack_rate: acked as f64 / last_done.as_secs_f64().max(1e-9),
        acked_2xx: acked,
        duplicates_sent: i.outcomes.iter().filter(|o| o.duplicate).count() as u64,
        distinct_events: i
            .outcomes
            .iter()
            .filter(|o| (200..300).contains(&o.status))
            .filter_map(|o| o.event_id.as_deref())
            .collect::<std::collections::HashSet<_>>()
            .len() as u64,
        ack_latency_ms: Pct::of(&all),
        ack_latency_by_route_status: by_rs.iter().map(|(k, h)| (k.clone(), Pct::of(h))).collect(),
        outcomes_by_kind: kinds,
        errors_by_kind: errors,
        end_to_end_ms: e2e,
        end_to_end_events_per_s: e2e_rate,
        drained: i.drained,
        drain_s: i.drain.as_secs_f64(),
        log_streams: streams,
        log_events: events,
        dlq,
        downstream_calls,
        kill_switch,
        serve,
        writer,
        faults: i.applied,
        violations,
        timeline,
        latency_distribution,
        queue_depth: i.queue,
        backlog: None,
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
    let p = |p: &Pct| {
        format!(
            "p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms (n={})",
            p.p50, p.p90, p.p99, p.p999, p.max, p.count
        )
    };
    s += &format!(
        "scenario {} (compress ×{}) against {} [{}]\n",
        r.scenario, r.compress, r.target, r.backend
    );
    s += &format!(
        "requests {} (planned {}, {} duplicates) over {:.1} s: offered {:.0}/s, acked 2xx {} at {:.0}/s\n",
        r.requests,
        r.planned,
        r.duplicates_sent,
        r.send_window_s,
        r.offered_rate,
        r.acked_2xx,
        r.achieved_ack_rate
    );
    s += &format!(
        "ack latency (from intended send time): {}\n",
        p(&r.ack_latency_ms)
    );
    for (k, v) in &r.ack_latency_by_route_status {
        s += &format!("  {k:<16} {}\n", p(v));
    }
    s += &format!(
        "outcomes by kind: {}\n",
        serde_json::to_string(&r.outcomes_by_kind).unwrap_or_default()
    );
    if !r.errors_by_kind.is_empty() {
        s += &format!(
            "non-2xx by kind: {}\n",
            serde_json::to_string(&r.errors_by_kind).unwrap_or_default()
        );
    }
    s += &format!(
        "end to end (intended send → event in log): {}; {:.0} events/s; drained: {} in {:.1} s\n",
        p(&r.end_to_end_ms),
        r.end_to_end_events_per_s,
        r.drained,
        r.drain_s
    );
    s += &format!(
        "log: {} streams, {} events; DLQ {}\n",
        r.log_streams, r.log_events, r.dlq
    );
    if let Some(b) = &r.backlog {
        s += &format!(
            "backlog drain (worker alone, started after sending): {} messages, {} log events in {:.2} s = {:.0} messages/s, {:.0} log events/s\n",
            b.messages, b.log_events, b.drain_s, b.messages_per_s, b.log_events_per_s
        );
    }
    if let Some(u) = &r.serve {
        s += &format!(
            "serve pid {}: CPU {:.2} s = {:.0} µs per acked webhook; RSS end {:.1} MB, peak (VmHWM) {:.1} MB\n",
            u.pid, u.cpu_s, u.cpu_per_event_us, u.rss_end_mb, u.rss_peak_mb
        );
    }
    if let Some(w) = &r.writer {
        s += &format!(
            "sqlite writer: {:.0} commits ({:.1} jobs each, {:.2} s in COMMIT); per acked webhook {:.2} write jobs, {:.1} WAL frames\n",
            w.totals.commits,
            w.jobs_per_commit,
            w.totals.commit_s,
            w.jobs_per_webhook,
            w.wal_frames_per_webhook
        );
    }
    // The classifier is a POST that writes nothing.
    let count = |f: &dyn Fn(&str) -> bool| -> u64 {
        r.downstream_calls
            .iter()
            .filter(|(k, _)| f(k))
            .map(|(_, v)| v)
            .sum()
    };
    let classifier = count(&|k| k.contains("/chat/completions"));
    let writes = count(&|k| !k.starts_with("GET") && !k.contains("/chat/completions"));
    s += &format!(
        "downstream calls: {} ({} writes, {} classifier)\n",
        r.downstream_calls.values().sum::<u64>(),
        writes,
        classifier
    );
    for k in &r.kill_switch {
        s += &format!(
            "kill switch at {:.1} s: last write after it: {:?} ms\n",
            k.flip_at_s, k.last_write_after_ms
        );
    }
    for f in &r.faults {
        s += &format!(
            "fault at {:.1} s: {}{}\n",
            f.at_s,
            f.what,
            f.error
                .as_ref()
                .map(|e| format!(" — FAILED: {e}"))
                .unwrap_or_default()
        );
    }
    if r.verdict == "unchecked" {
        s += "invariants: NOT CHECKED (--no-check, or no backend to read)\n";
    } else if r.violations.is_empty() {
        s += "invariants: all green\n";
    } else {
        s += &format!("INVARIANT VIOLATIONS ({}):\n", r.violations.len());
        for v in r.violations.iter().take(20) {
            s += &format!(
                "  [{}] {}: {}\n",
                v.invariant,
                v.conversation.as_deref().unwrap_or("-"),
                v.detail
            );
        }
    }
    s
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
