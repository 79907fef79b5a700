//! The invariant checker: after the queue drains, read the event log
//! through the same backend as `serve` and prove what the run promised.
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use conversation::{Conversation, EventBody};
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
    let mut v = Vec::new();
    // 1. Read the whole log.
    let mut logged: HashMap<String, Logged> = HashMap::new();
    let (mut streams, mut events) = (0usize, 0u64);
    let mut after: Option<String> = None;
    loop {
        let page = backend.events.list_streams(after.as_deref(), 500).await?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        for name in &page {
            streams += 1;
            let evs = match conversation::read_events(backend.events.as_ref(), name).await {
                Ok(e) => e,
                Err(e) => {
                    v.push(viol("log_decodes", Some(name), e.to_string()));
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
            match backend.events.projection(name).await? {
                None if evs.is_empty() => {}
                None => v.push(viol(
                    "projection_equals_replay",
                    Some(name),
                    "no stored projection".into(),
                )),
                Some(p) => {
                    let last_seq = evs.last().map_or(0, |e| e.seq);
                    let stored: Result<Conversation, _> = serde_json::from_str(&p.state);
                    match stored {
                        Ok(s) if s == replayed && p.version == last_seq => {}
                        Ok(_) => v.push(viol(
                            "projection_equals_replay",
                            Some(name),
                            format!("stored projection (version {}) differs from the replay of {} events", p.version, last_seq),
                        )),
                        Err(e) => v.push(viol("projection_equals_replay", Some(name), format!("undecodable projection: {e}"))),
                    }
                }
            }
        }
        after = Some(last);
    }

    // 2. Acked webhooks: once in the log; duplicates changed nothing.
    let mut acked: BTreeMap<&str, Acked> = BTreeMap::new();
    for o in outcomes {
        if o.kind.malformed() {
            if !(400..500).contains(&o.status) || !o.has_reason {
                v.push(viol(
                    "malformed_gets_4xx_with_reason",
                    None,
                    format!(
                        "{} got status {} (error {:?}, reason given: {})",
                        o.kind.as_str(),
                        o.status,
                        o.error,
                        o.has_reason
                    ),
                ));
            }
            continue;
        }
        if !(200..300).contains(&o.status) {
            continue;
        }
        // Every valid webhook carries an event; a 2xx without an id (e.g.
        // an SES notification answered `ignored`) would escape the checks.
        let Some(id) = o.event_id.as_deref() else {
            v.push(viol(
                "acked_in_log_exactly_once",
                Some(&format!(
                    "conversation #{}/{}",
                    o.route.as_str(),
                    o.conversation
                )),
                format!(
                    "{} answered {} {:?} without an event id",
                    o.kind.as_str(),
                    o.status,
                    o.word
                ),
            ));
            continue;
        };
        let a = acked.entry(id).or_default();
        // SES and email webhooks of one simulated thread share its stream.
        a.conversation = (o.route.thread(), o.conversation);
        a.first_ack = Some(a.first_ack.map_or(o.done, |t| t.min(o.done)));
        a.first_send = Some(a.first_send.map_or(o.sent, |t| t.min(o.sent)));
        a.intended = Some(a.intended.map_or(o.intended, |t| t.min(o.intended)));
        a.accepted += u32::from(o.status == 202);
    }
    let mut e2e = new_hist();
    let mut e2e_last = start_utc;
    let mut first_intended: Option<Duration> = None;
    let mut by_conv: HashMap<(crate::traffic::Route, usize), Vec<Placed<'_>>> = HashMap::new();
    for (id, a) in &acked {
        if a.accepted > 1 {
            v.push(viol(
                "duplicates_change_nothing",
                None,
                format!("event {id} was answered 202 accepted {} times", a.accepted),
            ));
        }
        let Some(l) = logged.get(*id) else {
            v.push(viol(
                "acked_in_log_exactly_once",
                Some(&format!(
                    "conversation #{}/{}",
                    a.conversation.0.as_str(),
                    a.conversation.1
                )),
                format!("acknowledged event {id} is not in the log"),
            ));
            continue;
        };
        if l.count != 1 {
            v.push(viol(
                "acked_in_log_exactly_once",
                Some(&l.stream),
                format!("event {id} is in the log {} times", l.count),
            ));
        }
        let intended = a.intended.unwrap_or_default();
        first_intended = Some(first_intended.map_or(intended, |f| f.min(intended)));
        let sent_at = start_utc + chrono::Duration::from_std(intended).unwrap_or_default();
        let us = (l.recorded_at - sent_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(1) as u64;
        let _ = e2e.record(us);
        e2e_last = e2e_last.max(l.recorded_at);
        by_conv.entry(a.conversation).or_default().push((id, a, l));
    }

    // 3. Per-conversation order: A acked before B was sent ⇒ A before B.
    for (conv, mut items) in by_conv {
        let streams: std::collections::BTreeSet<&str> =
            items.iter().map(|(_, _, l)| l.stream.as_str()).collect();
        if streams.len() > 1 {
            v.push(viol(
                "conversation_order",
                Some(&format!("conversation #{}/{}", conv.0.as_str(), conv.1)),
                format!("events split over streams {streams:?}"),
            ));
            continue;
        }
        let mut by_send: Vec<_> = items.clone();
        by_send.sort_by_key(|(_, a, _)| a.first_send);
        items.sort_by_key(|(_, a, _)| a.first_ack);
        let (mut k, mut max_seq): (usize, Option<(u64, &str)>) = (0, None);
        for (id_b, b, lb) in &by_send {
            while k < items.len() && items[k].1.first_ack < b.first_send {
                let (id_a, _, la) = items[k];
                if max_seq.is_none_or(|(s, _)| la.seq > s) {
                    max_seq = Some((la.seq, id_a));
                }
                k += 1;
            }
            if let Some((s, id_a)) = max_seq
                && s > lb.seq
            {
                v.push(viol(
                    "conversation_order",
                    Some(&lb.stream),
                    format!("{id_a} was acknowledged before {id_b} was sent but sits after it (seq {s} > {})", lb.seq),
                ));
            }
        }
    }

    // 4. DLQ holds exactly the poison messages: none from HTTP traffic.
    let dlq = backend.queue.stats().await?.dlq;
    if dlq > 0 {
        let letters = backend.queue.dlq_list(5).await.unwrap_or_default();
        let reasons: Vec<String> = letters
            .iter()
            .map(|d| format!("{} ({})", d.group_id, d.reason))
            .collect();
        v.push(viol(
            "dlq_only_poison",
            None,
            format!("{dlq} dead letters, none expected; first: {reasons:?}"),
        ));
    }

    // 5. Kill switch: no downstream write after flip + bound.
    let kill_switch_ms = kill_switch(flips, fake_log, bound_ms, &mut v);

    let mut dumps = Vec::new();
    for s in v
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
    let span = (e2e_last
        - (start_utc
            + chrono::Duration::from_std(first_intended.unwrap_or_default()).unwrap_or_default()))
    .to_std()
    .unwrap_or_default();
    Ok(Checked {
        violations: v,
        streams,
        events,
        e2e_events: e2e.len(),
        e2e,
        e2e_span: span,
        dlq,
        kill_switch_ms,
        dumps,
    })
}

fn kill_switch(
    flips: &[Flipped],
    log: &[LoggedRequest],
    bound_ms: u64,
    v: &mut Vec<Violation>,
) -> Vec<Option<f64>> {
    let ks: Vec<&Flipped> = flips.iter().filter(|f| f.name == "kill-switch").collect();
    let mut out = Vec::new();
    for (i, f) in ks.iter().enumerate() {
        if f.value != "all_writes" {
            continue;
        }
        let Some(from) = f.fake_ms else {
            v.push(viol(
                "kill_switch_bound",
                None,
                "flip time unknown on the fake's clock".into(),
            ));
            out.push(None);
            continue;
        };
        let until = ks[i + 1..]
            .iter()
            .find(|g| g.value != "all_writes")
            .and_then(|g| g.fake_ms)
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
            v.push(viol("kill_switch_bound", None, format!("{late} downstream writes more than {bound_ms} ms after kill-switch=all_writes (last at +{ms:.0} ms)")));
        }
        out.push(last);
    }
    out
}

fn viol(invariant: &'static str, conversation: Option<&String>, detail: String) -> Violation {
    Violation {
        invariant,
        conversation: conversation.cloned(),
        detail,
    }
}
