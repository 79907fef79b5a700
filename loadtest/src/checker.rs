//! The invariant checker: after the queue drains, read the event log
//! through the same backend as `serve` and prove what the run promised.
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use conversation::{EventBody, StoredState};
use downstream::fake::LoggedRequest;
use hdrhistogram::Histogram;
use ports::Backend;
use serde::Serialize;

use crate::faults::Flipped;
use crate::send::{Outcome, new_hist};

/// One broken invariant, with the conversation it concerns.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    /// Stream name or simulated conversation, when there is one.
    pub conversation: Option<String>,
    pub detail: String,
}

/// Where an event id landed in the log.
#[derive(Debug, Clone)]
struct Logged {
    stream: String,
    seq: u64,
    recorded_at: DateTime<Utc>,
    count: u32,
}

/// What the harness saw of one acknowledged event id.
#[derive(Debug, Default)]
struct Acked {
    first_ack: Option<Duration>,
    first_send: Option<Duration>,
    intended: Option<Duration>,
    accepted: u32,
    conversation: (crate::traffic::Route, usize),
}

/// An acked event with where it landed.
type Placed<'a> = (&'a str, &'a Acked, &'a Logged);

/// The checker's findings.
#[derive(Debug)]
pub struct Checked {
    pub violations: Vec<Violation>,
    pub streams: usize,
    pub events: u64,
    /// Intended send time → event recorded in the log, µs.
    pub e2e: Histogram<u64>,
    /// First intended send → last acked event recorded, for throughput.
    pub e2e_span: Duration,
    pub e2e_events: u64,
    pub dlq: u64,
    /// Per all_writes flip: last downstream write after it, ms (None: none).
    pub kill_switch_ms: Vec<Option<f64>>,
    /// A few offending conversations, printed in full.
    pub dumps: Vec<String>,
}

/// Wait until the queue is empty and nothing is in flight (two samples in
/// a row), at most `limit`. Returns whether it drained.
pub async fn drain(backend: &Backend, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut quiet = 0;
    while tokio::time::Instant::now() < deadline {
        match backend.queue.stats().await {
            Ok(s) if s.visible == 0 && s.in_flight == 0 => quiet += 1,
            _ => quiet = 0,
        }
        if quiet >= 2 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Run every check. `start_utc` is the wall clock at run offset zero.
pub async fn check(
    backend: &Backend,
    outcomes: &[Outcome],
    start_utc: DateTime<Utc>,
    flips: &[Flipped],
    fake_log: &[LoggedRequest],
    bound_ms: u64,
) -> anyhow::Result<Checked> {
    let mut violations = Vec::new();
    let log = read_log(backend, &mut violations).await?;
    let acked = acked_events(outcomes, &mut violations);
    let placed = place_in_log(&acked, &log.logged, start_utc, &mut violations);
    check_order(placed.by_conversation, &mut violations);
    let dlq = check_dlq(backend, &mut violations).await?;
    // Kill switch: no downstream write after flip + bound.
    let kill_switch_ms = kill_switch(flips, fake_log, bound_ms, &mut violations);
    let dumps = dump_streams(backend, &violations).await;
    let first_sent_at = start_utc
        + chrono::Duration::from_std(placed.first_intended.unwrap_or_default()).unwrap_or_default();
    let span = (placed.last_recorded - first_sent_at)
        .to_std()
        .unwrap_or_default();
    Ok(Checked {
        violations,
        streams: log.streams,
        events: log.events,
        e2e_events: placed.e2e.len(),
        e2e: placed.e2e,
        e2e_span: span,
        dlq,
        kill_switch_ms,
        dumps,
    })
}

/// The whole log, read once: where each webhook's event landed.
struct LogContents {
    /// By event id.
    logged: HashMap<String, Logged>,
    streams: usize,
    events: u64,
}

/// Read every stream; check that it decodes and that its projection equals
/// its replay.
async fn read_log(
    backend: &Backend,
    violations: &mut Vec<Violation>,
) -> anyhow::Result<LogContents> {
    let mut logged: HashMap<String, Logged> = HashMap::new();
    let (mut streams, mut events) = (0usize, 0u64);
    let mut pager = conversation::StreamPager::new(backend.events.as_ref());
    while let Some(page) = pager.next_page(500).await? {
        for name in &page {
            streams += 1;
            let evs = match conversation::read_events(backend.events.as_ref(), name).await {
                Ok(e) => e,
                Err(e) => {
                    violations.push(viol("log_decodes", Some(name), e.to_string()));
                    continue;
                }
            };
            events += evs.len() as u64;
            for e in &evs {
                if matches!(
                    e.body,
                    EventBody::MessageReceived { .. } | EventBody::TicketUpdated { .. }
                ) {
                    let entry = logged.entry(e.event_id.clone()).or_insert(Logged {
                        stream: name.clone(),
                        seq: e.seq,
                        recorded_at: e.at,
                        count: 0,
                    });
                    entry.count += 1;
                }
            }
            // Projection equals its replay.
            let replayed = conversation::replay(&evs);
            let last_seq = evs.last().map_or(0, |e| e.seq);
            let differs = |why: String| viol("projection_equals_replay", Some(name), why);
            match conversation::stored_state(backend.events.as_ref(), name).await? {
                StoredState::Missing if evs.is_empty() => {}
                StoredState::Missing => violations.push(differs("no stored projection".into())),
                StoredState::Current(stored)
                    if *stored == replayed && stored.version == last_seq => {}
                StoredState::Current(stored) => violations.push(differs(format!(
                    "stored projection (version {}) differs from the replay of {last_seq} events",
                    stored.version
                ))),
                StoredState::Stale { reason, .. } => {
                    violations.push(differs(format!("stored projection: {reason}")))
                }
            }
        }
    }

    Ok(LogContents {
        logged,
        streams,
        events,
    })
}

/// Acked webhooks by event id (malformed ones must get a 4xx with a reason).
fn acked_events<'a>(
    outcomes: &'a [Outcome],
    violations: &mut Vec<Violation>,
) -> BTreeMap<&'a str, Acked> {
    let mut acked: BTreeMap<&str, Acked> = BTreeMap::new();
    for outcome in outcomes {
        if outcome.kind.malformed() {
            if !(400..500).contains(&outcome.status) || !outcome.has_reason {
                violations.push(viol(
                    "malformed_gets_4xx_with_reason",
                    None,
                    format!(
                        "{} got status {} (error {:?}, reason given: {})",
                        outcome.kind.as_str(),
                        outcome.status,
                        outcome.error,
                        outcome.has_reason
                    ),
                ));
            }
            continue;
        }
        if !(200..300).contains(&outcome.status) {
            continue;
        }
        // Every valid webhook carries an event; a 2xx without an id (e.g.
        // an SES notification answered `ignored`) would escape the checks.
        let Some(id) = outcome.event_id.as_deref() else {
            violations.push(viol(
                "acked_in_log_exactly_once",
                Some(&conversation_label(outcome.route, outcome.conversation)),
                format!(
                    "{} answered {} {:?} without an event id",
                    outcome.kind.as_str(),
                    outcome.status,
                    outcome.word
                ),
            ));
            continue;
        };
        let seen = acked.entry(id).or_default();
        // SES and email webhooks of one simulated thread share its stream.
        seen.conversation = (outcome.route.thread(), outcome.conversation);
        seen.first_ack = Some(seen.first_ack.map_or(outcome.done, |t| t.min(outcome.done)));
        seen.first_send = Some(
            seen.first_send
                .map_or(outcome.sent, |t| t.min(outcome.sent)),
        );
        seen.intended = Some(
            seen.intended
                .map_or(outcome.intended, |t| t.min(outcome.intended)),
        );
        seen.accepted += u32::from(outcome.status == 202);
    }
    acked
}

/// `conversation #route/n`: a simulated conversation (not a stream name).
fn conversation_label(route: crate::traffic::Route, conversation: usize) -> String {
    format!("conversation #{}/{conversation}", route.as_str())
}

/// The acked events matched with the log, grouped by conversation, and
/// the end-to-end latencies.
struct Placement<'a> {
    by_conversation: HashMap<(crate::traffic::Route, usize), Vec<Placed<'a>>>,
    /// Intended send time → event recorded in the log, µs.
    e2e: Histogram<u64>,
    last_recorded: DateTime<Utc>,
    first_intended: Option<Duration>,
}

/// Every acked webhook is in the log exactly once, and was accepted (202)
/// at most once.
fn place_in_log<'a>(
    acked: &'a BTreeMap<&'a str, Acked>,
    logged: &'a HashMap<String, Logged>,
    start_utc: DateTime<Utc>,
    violations: &mut Vec<Violation>,
) -> Placement<'a> {
    let mut placement = Placement {
        by_conversation: HashMap::new(),
        e2e: new_hist(),
        last_recorded: start_utc,
        first_intended: None,
    };
    for (id, seen) in acked {
        if seen.accepted > 1 {
            violations.push(viol(
                "duplicates_change_nothing",
                None,
                format!(
                    "event {id} was answered 202 accepted {} times",
                    seen.accepted
                ),
            ));
        }
        let Some(landed) = logged.get(*id) else {
            let (route, conversation) = seen.conversation;
            violations.push(viol(
                "acked_in_log_exactly_once",
                Some(&conversation_label(route, conversation)),
                format!("acknowledged event {id} is not in the log"),
            ));
            continue;
        };
        if landed.count != 1 {
            violations.push(viol(
                "acked_in_log_exactly_once",
                Some(&landed.stream),
                format!("event {id} is in the log {} times", landed.count),
            ));
        }
        let intended = seen.intended.unwrap_or_default();
        placement.first_intended = Some(
            placement
                .first_intended
                .map_or(intended, |f| f.min(intended)),
        );
        let sent_at = start_utc + chrono::Duration::from_std(intended).unwrap_or_default();
        let micros = (landed.recorded_at - sent_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(1) as u64;
        let _ = placement.e2e.record(micros);
        placement.last_recorded = placement.last_recorded.max(landed.recorded_at);
        placement
            .by_conversation
            .entry(seen.conversation)
            .or_default()
            .push((id, seen, landed));
    }
    placement
}

/// Per-conversation order: A acked before B was sent ⇒ A before B.
fn check_order(
    by_conversation: HashMap<(crate::traffic::Route, usize), Vec<Placed<'_>>>,
    violations: &mut Vec<Violation>,
) {
    for ((route, conversation), mut by_ack) in by_conversation {
        let streams: std::collections::BTreeSet<&str> = by_ack
            .iter()
            .map(|(_, _, landed)| landed.stream.as_str())
            .collect();
        if streams.len() > 1 {
            violations.push(viol(
                "conversation_order",
                Some(&conversation_label(route, conversation)),
                format!("events split over streams {streams:?}"),
            ));
            continue;
        }
        let mut by_send: Vec<_> = by_ack.clone();
        by_send.sort_by_key(|(_, seen, _)| seen.first_send);
        by_ack.sort_by_key(|(_, seen, _)| seen.first_ack);
        // Walk the sends in order; `acked_before` covers every event acked
        // before the current one was sent, and the highest seq among them.
        let mut acked_before = 0;
        let mut highest: Option<(u64, &str)> = None;
        for (id_b, b, landed_b) in &by_send {
            while acked_before < by_ack.len() && by_ack[acked_before].1.first_ack < b.first_send {
                let (id_a, _, landed_a) = by_ack[acked_before];
                if highest.is_none_or(|(seq, _)| landed_a.seq > seq) {
                    highest = Some((landed_a.seq, id_a));
                }
                acked_before += 1;
            }
            if let Some((seq, id_a)) = highest
                && seq > landed_b.seq
            {
                violations.push(viol(
                    "conversation_order",
                    Some(&landed_b.stream),
                    format!("{id_a} was acknowledged before {id_b} was sent but sits after it (seq {seq} > {})", landed_b.seq),
                ));
            }
        }
    }
}

/// The DLQ holds exactly the poison messages: none from HTTP traffic.
async fn check_dlq(backend: &Backend, violations: &mut Vec<Violation>) -> anyhow::Result<u64> {
    let dlq = backend.queue.stats().await?.dlq;
    if dlq > 0 {
        let letters = backend
            .queue
            .dlq_list(&ports::DlqFilter::default(), 5)
            .await
            .unwrap_or_default();
        let reasons: Vec<String> = letters
            .iter()
            .map(|d| format!("{} ({})", d.group_id, d.reason))
            .collect();
        violations.push(viol(
            "dlq_only_poison",
            None,
            format!("{dlq} dead letters, none expected; first: {reasons:?}"),
        ));
    }
    Ok(dlq)
}

/// The first few offending streams, event by event.
async fn dump_streams(backend: &Backend, violations: &[Violation]) -> Vec<String> {
    let mut dumps = Vec::new();
    for s in violations
        .iter()
        .filter_map(|x| x.conversation.as_ref())
        .filter(|c| !c.starts_with("conversation #"))
        .take(3)
    {
        if let Ok(evs) = conversation::read_events(backend.events.as_ref(), s).await {
            let lines: Vec<String> = evs
                .iter()
                .map(|e| format!("    #{} {} {}", e.seq, e.kind(), e.event_id))
                .collect();
            dumps.push(format!("  stream {s}:\n{}", lines.join("\n")));
        }
    }
    dumps
}

fn kill_switch(
    flips: &[Flipped],
    log: &[LoggedRequest],
    bound_ms: u64,
    violations: &mut Vec<Violation>,
) -> Vec<Option<f64>> {
    let kill_switch_flips: Vec<&Flipped> =
        flips.iter().filter(|f| f.name == "kill-switch").collect();
    let mut last_write_ms = Vec::new();
    for (i, flip) in kill_switch_flips.iter().enumerate() {
        if flip.value != "all_writes" {
            continue;
        }
        let Some(from) = flip.fake_ms else {
            violations.push(viol(
                "kill_switch_bound",
                None,
                "flip time unknown on the fake's clock".into(),
            ));
            last_write_ms.push(None);
            continue;
        };
        // Until the next flip away from all_writes.
        let until = kill_switch_flips[i + 1..]
            .iter()
            .find(|next| next.value != "all_writes")
            .and_then(|next| next.fake_ms)
            .unwrap_or(f64::INFINITY);
        let last = log
            .iter()
            .filter(|r| r.is_write() && r.at_ms >= from && r.at_ms < until)
            .map(|r| r.at_ms - from)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        if let Some(ms) = last
            && ms > bound_ms as f64
        {
            let late = log
                .iter()
                .filter(|r| r.is_write() && r.at_ms >= from + bound_ms as f64 && r.at_ms < until)
                .count();
            violations.push(viol("kill_switch_bound", None, format!("{late} downstream writes more than {bound_ms} ms after kill-switch=all_writes (last at +{ms:.0} ms)")));
        }
        last_write_ms.push(last);
    }
    last_write_ms
}

fn viol(invariant: &'static str, conversation: Option<&String>, detail: String) -> Violation {
    Violation {
        invariant,
        conversation: conversation.cloned(),
        detail,
    }
}
