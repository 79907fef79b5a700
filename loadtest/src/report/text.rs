//! The text summary printed after a run.
use super::{Pct, Report};

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
