//! Background samplers: queue depth through the backend, and CPU time and
//! memory of the `serve` process from /proc.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ports::Backend;
use ports::metrics;
use serde::Serialize;
use tokio::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct QueueSample {
    pub t_s: f64,
    pub visible: u64,
    pub in_flight: u64,
    pub dlq: u64,
}

/// CPU seconds (user + system) and memory of a process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    pub cpu_s: f64,
    pub rss_kb: u64,
    /// Peak resident set (VmHWM).
    pub hwm_kb: u64,
}

/// Read /proc/PID/stat and /proc/PID/status (Linux). `None` elsewhere or
/// when the process is gone.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime, stime are 14, 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_s: ticks / clock_ticks(),
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
    })
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Samples queue depth every `every` until `stop` is set.
pub async fn queue_depth(
    backend: Backend,
    start: Instant,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<QueueSample> {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(s) = backend.queue.stats().await {
            out.push(QueueSample {
                t_s: start.elapsed().as_secs_f64(),
                visible: s.visible,
                in_flight: s.in_flight,
                dlq: s.dlq,
            });
        }
        tokio::time::sleep(every).await;
    }
    out
}

/// The embedded writer's counters from serve's `/metrics` (absent on the
/// AWS backend, or when serve does not answer).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WriterSample {
    pub commits: f64,
    pub jobs: f64,
    pub wal_frames: f64,
    pub commit_s: f64,
}

impl WriterSample {
    /// Parse the Prometheus text exposition; `None` without the counters.
    pub fn parse(text: &str) -> Option<WriterSample> {
        let value = |name: &str| {
            text.lines()
                .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .find_map(|v| v.trim().parse::<f64>().ok())
        };
        Some(WriterSample {
            commits: value(metrics::SQLITE_COMMITS)?,
            jobs: value(metrics::SQLITE_JOBS)?,
            wal_frames: value(metrics::SQLITE_WAL_FRAMES)?,
            commit_s: value(&format!("{}_sum", metrics::SQLITE_COMMIT_SECONDS)).unwrap_or(0.0),
        })
    }

    /// Scrape `base/metrics`.
    pub async fn scrape(client: &reqwest::Client, base: &str) -> Option<WriterSample> {
        let resp = client.get(format!("{base}/metrics")).send().await.ok()?;
        WriterSample::parse(&resp.text().await.ok()?)
    }

    /// The counters' growth since `before`.
    pub fn since(self, before: WriterSample) -> WriterSample {
        WriterSample {
            commits: self.commits - before.commits,
            jobs: self.jobs - before.jobs,
            wal_frames: self.wal_frames - before.wal_frames,
            commit_s: self.commit_s - before.commit_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_counters_are_read_from_the_exposition() {
        let text = "# TYPE switchyard_sqlite_commits_total counter\n\
                    switchyard_sqlite_commits_total 10\n\
                    switchyard_sqlite_write_jobs_total 150\n\
                    switchyard_sqlite_wal_frames_total 1030\n\
                    switchyard_sqlite_commit_seconds{quantile=\"0.5\"} 0.001\n\
                    switchyard_sqlite_commit_seconds_sum 0.25\n";
        let w = WriterSample::parse(text).expect("counters present");
        assert_eq!(
            (w.commits, w.jobs, w.wal_frames, w.commit_s),
            (10.0, 150.0, 1030.0, 0.25)
        );
        let d = w.since(WriterSample {
            commits: 4.0,
            jobs: 50.0,
            wal_frames: 30.0,
            commit_s: 0.05,
        });
        assert_eq!((d.commits, d.jobs, d.wal_frames), (6.0, 100.0, 1000.0));
        assert!(WriterSample::parse("switchyard_ingress_requests_total 3\n").is_none());
    }
}
