//! The end-of-run checks, from the harness's own reads: each ticket's
//! stream through the event-store port, the fake's request log, the DLQ
//! through the queue port.
//!
//! - every acknowledged webhook is in its stream exactly once, and the
//!   streams' `MessageReceived` follow acceptance order;
//! - no ticket got the same reply twice, no template more often than the
//!   rules allow (once per 24 h) and no more replies than the 24 h limit;
//!   every reply on the wire was recorded as requested before it was sent;
//! - every action ends completed, suppressed, or failed / unknown *and*
//!   handed to a human;
//! - every dead letter carries a reason;
//! - in a run with nothing that can leave an outcome unknown (no kills, no
//!   late answers), no action's outcome is unknown and every hand-off is
//!   one the rules asked for (it follows the `DecisionMade`): anything
//!   else means two processes worked one conversation at once;
//! - every stream decodes.
use std::collections::{BTreeMap, HashMap};

use conversation::EventBody;
use conversation::Rules;
use downstream::fake::LoggedRequest;
use ports::Backend;

use super::senders::TicketLog;

/// One broken promise, for the details printed after a failed run.
#[derive(Debug, Clone)]
pub struct Finding {
    pub what: &'static str,
    pub ticket: Option<String>,
    pub detail: String,
}

/// What the checks counted. Every field but `acked`, `redelivered`,
/// `duplicates_sent`, `replies`, `handed_to_human` and `dlq` counts
/// violations.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub acked: usize,
    /// Acknowledged only after more than one request (a redelivery).
    pub redelivered: usize,
    pub duplicates_sent: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub out_of_order: usize,
    pub double_replies: usize,
    pub over_limit_templates: usize,
    pub missing_outcomes: usize,
    pub dlq: usize,
    pub dlq_without_reason: usize,
    /// Duplicates of an acknowledged body answered 202 (accepted anew).
    pub dup_reaccepted: usize,
    /// Valid webhooks refused (4xx).
    pub rejected: usize,
    /// Webhooks never acknowledged within the deadline.
    pub unacked: usize,
    /// Replies on the wire with no `ActionRequested` of their key.
    pub unrecorded_writes: usize,
    /// Streams that cannot be read back (nothing else is checked on them).
    pub corrupt_streams: usize,
    /// `ActionOutcomeUnknown` events.
    pub unknown_outcomes: usize,
    /// Hand-offs that did not come from a decision (an unknown or failed
    /// outcome, an open breaker).
    pub forced_handoffs: usize,
    /// The two counts above are violations (a quiet run).
    pub outcomes_must_be_known: bool,
    pub replies: usize,
    pub handed_to_human: usize,
}

impl Counts {
    pub fn violations(&self) -> usize {
        self.lost
            + self.duplicated
            + self.out_of_order
            + self.double_replies
            + self.over_limit_templates
            + self.missing_outcomes
            + self.dlq_without_reason
            + self.dup_reaccepted
            + self.rejected
            + self.unacked
            + self.unrecorded_writes
            + self.corrupt_streams
            + if self.outcomes_must_be_known {
                self.unknown_outcomes + self.forced_handoffs
            } else {
                0
            }
    }
}

/// Run every check.
pub async fn check(
    backend: &Backend,
    tickets: &[TicketLog],
    fake_log: &[LoggedRequest],
    rules: &Rules,
    outcomes_must_be_known: bool,
) -> anyhow::Result<(Counts, Vec<Finding>)> {
    let mut counts = Counts {
        outcomes_must_be_known,
        ..Counts::default()
    };
    let mut findings = Vec::new();
    let dead = dead_letters(backend, &mut counts, &mut findings).await?;
    let replies = replies_by_ticket(fake_log);
    for t in tickets {
        counts.acked += t.acked.len();
        counts.redelivered += t.acked.iter().filter(|a| a.attempts > 1).count();
        counts.duplicates_sent += t.duplicates.len();
        for (id, status) in &t.duplicates {
            if *status != 200 {
                counts.dup_reaccepted += 1;
                findings.push(found(
                    "dup_reaccepted",
                    t,
                    format!("a duplicate of acknowledged {id} was answered {status}"),
                ));
            }
        }
        for rejection in &t.rejected {
            counts.rejected += 1;
            findings.push(found("rejected", t, rejection.clone()));
        }
        for unacked in &t.unacked {
            counts.unacked += 1;
            findings.push(found("unacked", t, unacked.clone()));
        }
        let events = match conversation::read_events(backend.events.as_ref(), &t.ticket).await {
            Ok(events) => events,
            Err(e) => {
                counts.corrupt_streams += 1;
                findings.push(found("corrupt_streams", t, e.to_string()));
                continue;
            }
        };
        stream_order(t, &events, &dead, &mut counts, &mut findings);
        let requested = outcomes(t, &events, &mut counts, &mut findings);
        let sent = replies
            .get(t.ticket.as_str())
            .map_or(&[][..], Vec::as_slice);
        reply_limits(t, sent, &requested, rules, &mut counts, &mut findings);
    }
    Ok((counts, findings))
}

fn found(what: &'static str, t: &TicketLog, detail: String) -> Finding {
    Finding {
        what,
        ticket: Some(t.ticket.clone()),
        detail,
    }
}

/// Every dead letter, by the event id of the envelope it carries.
async fn dead_letters(
    backend: &Backend,
    counts: &mut Counts,
    findings: &mut Vec<Finding>,
) -> anyhow::Result<HashMap<String, String>> {
    let mut by_event = HashMap::new();
    for d in backend
        .queue
        .dlq_list(&ports::DlqFilter::default(), 100_000)
        .await?
    {
        counts.dlq += 1;
        if d.reason.trim().is_empty() {
            counts.dlq_without_reason += 1;
            findings.push(Finding {
                what: "dlq_without_reason",
                ticket: Some(d.group_id.clone()),
                detail: format!("dead letter {} carries no reason", d.id),
            });
        }
        let event_id = envelope::decode(d.body.as_bytes())
            .map(|e| e.event_id.to_string())
            .unwrap_or_else(|_| d.id.clone());
        by_event.insert(event_id, d.reason);
    }
    Ok(by_event)
}

/// Each acknowledged message once in the stream, in acceptance order.
fn stream_order(
    t: &TicketLog,
    events: &[conversation::Event],
    dead: &HashMap<String, String>,
    counts: &mut Counts,
    findings: &mut Vec<Finding>,
) {
    let mut seqs: HashMap<&str, Vec<u64>> = HashMap::new();
    for e in events {
        if let EventBody::MessageReceived { .. } = e.body {
            seqs.entry(e.event_id.as_str()).or_default().push(e.seq);
        }
    }
    let mut latest: Option<(u64, &str)> = None;
    for a in &t.acked {
        let Some(at) = seqs.get(a.event_id.as_str()) else {
            counts.lost += 1;
            let where_ = match dead.get(&a.event_id) {
                Some(reason) => format!("dead-lettered: {reason}"),
                None => "nowhere".to_owned(),
            };
            findings.push(found(
                "lost",
                t,
                format!(
                    "acknowledged {} is not in the stream ({where_})",
                    a.event_id
                ),
            ));
            continue;
        };
        if at.len() > 1 {
            counts.duplicated += at.len() - 1;
            findings.push(found(
                "duplicated",
                t,
                format!(
                    "{} is in the stream {} times (seq {at:?})",
                    a.event_id,
                    at.len()
                ),
            ));
        }
        let seq = at[0];
        match latest {
            Some((before, prev)) if seq < before => {
                counts.out_of_order += 1;
                findings.push(found(
                    "out_of_order",
                    t,
                    format!(
                        "{} was accepted after {prev} but sits before it (seq {seq} < {before})",
                        a.event_id
                    ),
                ));
            }
            _ => latest = Some((seq, a.event_id.as_str())),
        }
    }
}

/// How an action ended, as far as the stream tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    Done,
    /// Unknown outcome or failed for good, at this seq: needs a handoff.
    NeedsHuman(u64),
}

/// Every planned or requested action ends; returns the requested keys.
fn outcomes(
    t: &TicketLog,
    events: &[conversation::Event],
    counts: &mut Counts,
    findings: &mut Vec<Finding>,
) -> BTreeMap<String, String> {
    let mut ends: BTreeMap<String, End> = BTreeMap::new();
    let mut requested = BTreeMap::new();
    let mut handoffs = Vec::new();
    let mut previous: Option<&EventBody> = None;
    for e in events {
        match &e.body {
            EventBody::DecisionMade(d) => {
                for a in &d.actions {
                    ends.entry(a.key.clone()).or_insert(End::Open);
                }
            }
            EventBody::ActionRequested { key, action } => {
                ends.entry(key.clone()).or_insert(End::Open);
                requested.insert(key.clone(), action.name().to_owned());
            }
            EventBody::ActionCompleted { key, .. } | EventBody::ActionSuppressed { key, .. } => {
                ends.insert(key.clone(), End::Done);
            }
            EventBody::ActionOutcomeUnknown { key }
            | EventBody::ActionFailed {
                key,
                retryable: false,
                ..
            } => {
                let end = ends.entry(key.clone()).or_insert(End::Open);
                if *end == End::Open {
                    *end = End::NeedsHuman(e.seq);
                }
            }
            EventBody::HandedToHuman { reason } => {
                counts.handed_to_human += 1;
                handoffs.push(e.seq);
                if !matches!(previous, Some(EventBody::DecisionMade(_))) {
                    counts.forced_handoffs += 1;
                    if counts.outcomes_must_be_known {
                        findings.push(found(
                            "forced_handoffs",
                            t,
                            format!(
                                "seq {}: handed to a human without a decision: {}",
                                e.seq,
                                envelope::redact::redact(reason)
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        if let EventBody::ActionOutcomeUnknown { key } = &e.body {
            counts.unknown_outcomes += 1;
            if counts.outcomes_must_be_known {
                findings.push(found(
                    "unknown_outcomes",
                    t,
                    format!("seq {}: the outcome of {key} is unknown", e.seq),
                ));
            }
        }
        previous = Some(&e.body);
    }
    for (key, end) in ends {
        let ok = match end {
            End::Done => true,
            End::NeedsHuman(at) => handoffs.iter().any(|h| *h > at),
            End::Open => false,
        };
        if !ok {
            counts.missing_outcomes += 1;
            let why = match end {
                End::Open => "has no outcome",
                _ => "ended unknown or failed, and no human was handed the ticket",
            };
            findings.push(found("missing_outcomes", t, format!("action {key} {why}")));
        }
    }
    requested
}

/// A customer-facing reply the fake received (and applied).
#[derive(Debug, Clone)]
struct Reply {
    body: String,
    key: Option<String>,
    at_ms: f64,
}

/// The ticket a customer-facing reply went to, if `r` is one:
/// `PUT /v1/tickets/{id}` carrying a public comment.
pub fn reply_ticket(r: &LoggedRequest) -> Option<&str> {
    if r.method != "PUT" {
        return None;
    }
    let path = r.path.split('?').next().unwrap_or_default();
    let ticket = path.strip_prefix("/v1/tickets/")?;
    if ticket.contains('/') {
        return None;
    }
    let comment = r.body.as_ref()?.get("ticket")?.get("comment")?;
    let public = comment
        .get("public")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true);
    public.then_some(ticket)
}

/// Replies the fake applied, by ticket. A write still unanswered when its
/// client died (status 0) was applied all the same: the fake applies
/// writes on arrival.
fn replies_by_ticket(log: &[LoggedRequest]) -> HashMap<&str, Vec<Reply>> {
    let mut out: HashMap<&str, Vec<Reply>> = HashMap::new();
    for r in log {
        let Some(ticket) = reply_ticket(r) else {
            continue;
        };
        if r.status != 0 && !(200..300).contains(&r.status) {
            continue;
        }
        let body = r
            .body
            .as_ref()
            .and_then(|b| b.pointer("/ticket/comment/body"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        out.entry(ticket).or_default().push(Reply {
            body,
            key: r.idempotency_key.clone(),
            at_ms: r.at_ms,
        });
    }
    out
}

/// The rules' reply limits, checked on what the fake received.
fn reply_limits(
    t: &TicketLog,
    sent: &[Reply],
    requested: &BTreeMap<String, String>,
    rules: &Rules,
    counts: &mut Counts,
    findings: &mut Vec<Finding>,
) {
    counts.replies += sent.len();
    let mut same_text: BTreeMap<&str, Vec<&Reply>> = BTreeMap::new();
    let mut per_template: BTreeMap<String, usize> = BTreeMap::new();
    for r in sent {
        same_text.entry(r.body.as_str()).or_default().push(r);
        let template = template_of(&r.body, rules).unwrap_or("(no template)");
        *per_template.entry(template.to_owned()).or_default() += 1;
        let recorded = r.key.as_ref().is_some_and(|k| requested.contains_key(k));
        if !recorded {
            counts.unrecorded_writes += 1;
            findings.push(found(
                "unrecorded_writes",
                t,
                format!(
                    "a reply with key {:?} went out with no ActionRequested of that key",
                    r.key
                ),
            ));
        }
    }
    for (text, copies) in same_text.iter().filter(|(_, r)| r.len() > 1) {
        counts.double_replies += copies.len() - 1;
        let name = template_of(text, rules).unwrap_or("(no template)");
        let at: Vec<String> = copies
            .iter()
            .map(|r| {
                format!(
                    "{:.1} s key {}",
                    r.at_ms / 1000.0,
                    r.key.as_deref().unwrap_or("-")
                )
            })
            .collect();
        findings.push(found(
            "double_replies",
            t,
            format!(
                "the {name} reply went out {} times ({})",
                copies.len(),
                at.join("; ")
            ),
        ));
    }
    for (name, n) in per_template.iter().filter(|(_, n)| **n > 1) {
        counts.over_limit_templates += n - 1;
        findings.push(found(
            "over_limit_templates",
            t,
            format!("template {name} sent {n} times within 24 h (at most once)"),
        ));
    }
    let max = rules.settings.max_auto_replies_per_24h;
    if sent.len() > max {
        counts.over_limit_templates += sent.len() - max;
        findings.push(found(
            "over_limit_templates",
            t,
            format!("{} auto-replies within 24 h (at most {max})", sent.len()),
        ));
    }
}

/// The template `body` was rendered from: every literal part of it (the
/// text between `{variables}`) appears in `body`, in order.
pub fn template_of<'r>(body: &str, rules: &'r Rules) -> Option<&'r str> {
    rules.templates.iter().find_map(|(name, template)| {
        let mut rest = body;
        for part in literal_parts(template) {
            let at = rest.find(part)?;
            rest = &rest[at + part.len()..];
        }
        Some(name.as_str())
    })
}

/// A template's text between its `{variable}` placeholders.
fn literal_parts(template: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end)
                if after[..end]
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_') =>
            {
                parts.push(&rest[..start]);
                rest = &after[end + 1..];
            }
            _ => {
                parts.push(&rest[..=start]);
                rest = after;
            }
        }
    }
    parts.push(rest);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_traced_back_to_their_template() {
        let rules = Rules::default_rules().expect("default rules");
        let mut vars = BTreeMap::new();
        vars.insert("customer_name", "there".to_owned());
        vars.insert("order_ref", " #1234".to_owned());
        for name in rules.templates.keys() {
            let body = rules.render(name, &vars).expect("renders");
            assert_eq!(template_of(&body, &rules), Some(name.as_str()));
        }
        assert_eq!(template_of("Thanks, a teammate will reply.", &rules), None);
    }

    #[test]
    fn only_public_ticket_comments_are_replies() {
        let req = |method: &str, path: &str, body: serde_json::Value| LoggedRequest {
            method: method.into(),
            path: path.into(),
            body: Some(body),
            at_ms: 0.0,
            status: 200,
            idempotency_key: None,
            retry_after_secs: None,
            traceparent: None,
        };
        let reply = serde_json::json!({"ticket": {"comment": {"body": "hi", "public": true}}});
        let note = serde_json::json!({"ticket": {"comment": {"body": "hi", "public": false}}});
        let tags = serde_json::json!({"tags": ["a"]});
        assert_eq!(
            reply_ticket(&req("PUT", "/v1/tickets/T1", reply.clone())),
            Some("T1")
        );
        assert_eq!(reply_ticket(&req("PUT", "/v1/tickets/T1", note)), None);
        assert_eq!(
            reply_ticket(&req("PUT", "/v1/tickets/T1/add-tags", tags)),
            None
        );
        assert_eq!(reply_ticket(&req("GET", "/v1/tickets/T1", reply)), None);
    }
}
