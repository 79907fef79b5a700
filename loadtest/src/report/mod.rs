//! The run's numbers: built from the outcomes (`build.rs`), printed as a
//! text summary (`text.rs`), written as JSON (and HTML by `html.rs`).
use std::collections::BTreeMap;
use std::time::Duration;

use downstream::fake::LoggedRequest;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::checker::{Checked, Violation};
use crate::faults::{Applied, Flipped};
use crate::sample::{ProcSample, QueueSample, WriterSample};
use crate::send::Outcome;

mod build;
mod text;

pub use build::build;
pub use text::text;

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
    pub fn of(histogram: &Histogram<u64>) -> Pct {
        let ms_at = |quantile| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        Pct {
            count: histogram.len(),
            p50: ms_at(0.5),
            p90: ms_at(0.9),
            p99: ms_at(0.99),
            p999: ms_at(0.999),
            max: histogram.max() as f64 / 1000.0,
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
        let drain_s = self.drain_s.max(1e-9);
        self.backlog = Some(Backlog {
            messages: self.distinct_events,
            log_events: self.log_events,
            drain_s: self.drain_s,
            messages_per_s: self.distinct_events as f64 / drain_s,
            log_events_per_s: self.log_events as f64 / drain_s,
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
