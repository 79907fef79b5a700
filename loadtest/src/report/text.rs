//! The text summary printed after a run.
use super::{Pct, Report};

/// The text summary.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    traffic_text(report, &mut out);
    log_text(report, &mut out);
    resources_text(report, &mut out);
    downstream_text(report, &mut out);
    invariants_text(report, &mut out);
    out
}

/// A latency summary on one line.
fn pct_text(pct: &Pct) -> String {
    format!(
        "p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms (n={})",
        pct.p50, pct.p90, pct.p99, pct.p999, pct.max, pct.count
    )
}

/// What was sent, how fast it was acknowledged, what failed.
fn traffic_text(report: &Report, out: &mut String) {
    *out += &format!(
        "scenario {} (compress ×{}) against {} [{}]\n",
        report.scenario, report.compress, report.target, report.backend
    );
    *out += &format!(
        "requests {} (planned {}, {} duplicates) over {:.1} s: offered {:.0}/s, acked 2xx {} at {:.0}/s\n",
        report.requests,
        report.planned,
        report.duplicates_sent,
        report.send_window_s,
        report.offered_rate,
        report.acked_2xx,
        report.achieved_ack_rate
    );
    *out += &format!(
        "ack latency (from intended send time): {}\n",
        pct_text(&report.ack_latency_ms)
    );
    for (route_status, pct) in &report.ack_latency_by_route_status {
        *out += &format!("  {route_status:<16} {}\n", pct_text(pct));
    }
    *out += &format!(
        "outcomes by kind: {}\n",
        serde_json::to_string(&report.outcomes_by_kind).unwrap_or_default()
    );
    if !report.errors_by_kind.is_empty() {
        *out += &format!(
            "non-2xx by kind: {}\n",
            serde_json::to_string(&report.errors_by_kind).unwrap_or_default()
        );
    }
}

/// End to end, the drain and what the log holds.
fn log_text(report: &Report, out: &mut String) {
    *out += &format!(
        "end to end (intended send → event in log): {}; {:.0} events/s; drained: {} in {:.1} s\n",
        pct_text(&report.end_to_end_ms),
        report.end_to_end_events_per_s,
        report.drained,
        report.drain_s
    );
    *out += &format!(
        "log: {} streams, {} events; DLQ {}\n",
        report.log_streams, report.log_events, report.dlq
    );
    if let Some(backlog) = &report.backlog {
        *out += &format!(
            "backlog drain (worker alone, started after sending): {} messages, {} log events in {:.2} s = {:.0} messages/s, {:.0} log events/s\n",
            backlog.messages,
            backlog.log_events,
            backlog.drain_s,
            backlog.messages_per_s,
            backlog.log_events_per_s
        );
    }
}

/// serve's CPU and memory, and its SQLite writer's work.
fn resources_text(report: &Report, out: &mut String) {
    if let Some(usage) = &report.serve {
        *out += &format!(
            "serve pid {}: CPU {:.2} s = {:.0} µs per acked webhook; RSS end {:.1} MB, peak (VmHWM) {:.1} MB\n",
            usage.pid, usage.cpu_s, usage.cpu_per_event_us, usage.rss_end_mb, usage.rss_peak_mb
        );
    }
    if let Some(writer) = &report.writer {
        *out += &format!(
            "sqlite writer: {:.0} commits ({:.1} jobs each, {:.2} s in COMMIT); per acked webhook {:.2} write jobs, {:.1} WAL frames\n",
            writer.totals.commits,
            writer.jobs_per_commit,
            writer.totals.commit_s,
            writer.jobs_per_webhook,
            writer.wal_frames_per_webhook
        );
    }
}

/// Downstream calls, kill-switch flips and the faults applied.
fn downstream_text(report: &Report, out: &mut String) {
    // The classifier is a POST that writes nothing.
    let count = |f: &dyn Fn(&str) -> bool| -> u64 {
        report
            .downstream_calls
            .iter()
            .filter(|(call, _)| f(call))
            .map(|(_, n)| n)
            .sum()
    };
    let classifier = count(&|call| call.contains("/chat/completions"));
    let writes = count(&|call| !call.starts_with("GET") && !call.contains("/chat/completions"));
    *out += &format!(
        "downstream calls: {} ({} writes, {} classifier)\n",
        report.downstream_calls.values().sum::<u64>(),
        writes,
        classifier
    );
    for flip in &report.kill_switch {
        *out += &format!(
            "kill switch at {:.1} s: last write after it: {:?} ms\n",
            flip.flip_at_s, flip.last_write_after_ms
        );
    }
    for fault in &report.faults {
        *out += &format!(
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

fn invariants_text(report: &Report, out: &mut String) {
    if report.verdict == "unchecked" {
        *out += "invariants: NOT CHECKED (--no-check, or no backend to read)\n";
    } else if report.violations.is_empty() {
        *out += "invariants: all green\n";
    } else {
        *out += &format!("INVARIANT VIOLATIONS ({}):\n", report.violations.len());
        for violation in report.violations.iter().take(20) {
            *out += &format!(
                "  [{}] {}: {}\n",
                violation.invariant,
                violation.conversation.as_deref().unwrap_or("-"),
                violation.detail
            );
        }
    }
}
