//! Deterministic decisions: what a customer message means and what to do
//! about it. Pure: same rules, message, state and time → same decision.
//!
//! [`decide`] scores the rules' intents (a model may refine a non-tier-0
//! match), plans the routing tags, then the reply — unless one of the
//! [`Guardrail`]s holds; the first that does is recorded with its note.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::event::{
    Action, Author, DecidedBy, Decision, DecisionMode, EventBody, Guardrail, IntentMatch,
    PlannedAction,
};
use crate::rules::{Intent, Rules};
use crate::state::Conversation;

/// What the decider needs to know about one message.
#[derive(Debug, Clone)]
pub struct MessageFacts<'a> {
    /// The message's own event id (part of its action keys).
    pub event_id: &'a str,
    /// The conversation (stream) it belongs to.
    pub conversation_id: &'a str,
    /// Its text (possibly truncated).
    pub text: &'a str,
    /// The email subject, when there is one.
    pub subject: Option<&'a str>,
    /// Who wrote it.
    pub author: Author,
    /// The Richpanel ticket to act on; without one nothing is performed.
    pub ticket_id: Option<&'a str>,
    /// For templates (`{customer_name}`).
    pub customer_name: Option<&'a str>,
    /// For templates (`{order_ref}`).
    pub order_ref: Option<&'a str>,
    /// Live, or shadow (actions recorded, never sent).
    pub mode: DecisionMode,
}

/// An optional model classification to merge with the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelClassification {
    /// One of the rules' intent names (anything else is ignored).
    pub intent: String,
    /// 0..=1.
    pub confidence: f64,
}

/// The outcome of deciding: the `DecisionMade` record and, when a human
/// must take over, why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// What is recorded as `DecisionMade`.
    pub decision: Decision,
    /// Why a human must take over, if one must (`HandedToHuman`).
    pub handoff: Option<String>,
}

impl Decided {
    /// The events that record it: `DecisionMade`, then `HandedToHuman`
    /// when a human must take over.
    pub fn into_events(self) -> Vec<EventBody> {
        let mut events = vec![EventBody::DecisionMade(self.decision)];
        events.extend(
            self.handoff
                .map(|reason| EventBody::HandedToHuman { reason }),
        );
        events
    }
}

/// Idempotency key of an action: stable across redeliveries of the event.
pub fn action_key(kind: &str, conversation_id: &str, event_id: &str) -> String {
    format!("act:{kind}:{conversation_id}:{event_id}")
}

/// Decide what `msg` means and what to do about it, given the
/// conversation's state and the time.
pub fn decide(
    rules: &Rules,
    msg: &MessageFacts<'_>,
    conv: &Conversation,
    now: DateTime<Utc>,
    model: Option<&ModelClassification>,
) -> Decided {
    let mut d = Decided {
        decision: Decision {
            intents: Vec::new(),
            intent: None,
            route: None,
            confidence: 0.0,
            template: None,
            mode: msg.mode,
            decided_by: DecidedBy::Rules,
            tier0: false,
            note: None,
            guardrail: None,
            actions: Vec::new(),
        },
        handoff: None,
    };
    if msg.author != Author::Customer {
        let who = if msg.author == Author::Operator {
            "operator"
        } else {
            "bot"
        };
        d.decision.hold_back(
            Guardrail::NotFromCustomer,
            format!("{who}-authored message: recorded, never acted on (loop prevention)"),
        );
        return d;
    }
    let primary = classify(rules, msg, model, &mut d.decision);
    let Some(ticket_id) = msg.ticket_id else {
        d.decision.note =
            Some("no Richpanel ticket for this conversation: decision recorded only".into());
        return d;
    };
    let s = &rules.settings;
    let route = d.decision.route.clone().unwrap_or_default();
    let mut tags = vec![s.processed_tag.clone(), s.routed_tag.clone(), route];
    tags.dedup();
    d.decision.plan(
        action_key("rp_tag", msg.conversation_id, msg.event_id),
        Action::AddTags {
            ticket_id: ticket_id.to_owned(),
            tags,
        },
    );
    if d.decision.tier0 {
        let intent = d.decision.intent.clone().unwrap_or_else(|| "?".into());
        d.decision.hold_back(
            Guardrail::Tier0,
            format!("tier-0 intent {intent}: never automated"),
        );
        d.handoff = Some(format!("tier-0 intent {intent}: never automated"));
        return d;
    }
    let Some((intent, confidence)) = primary else {
        d.decision.note = Some("no intent matched: routed to the default queue".into());
        return d;
    };
    if let Some(template) = &intent.template {
        d.decision.template = Some(template.clone());
        let reply = ReplyCheck {
            rules,
            conv,
            now,
            template,
            confidence,
            planned: d.decision.actions.len(),
        };
        plan_reply(&reply, msg, ticket_id, &mut d.decision);
    }
    d
}

/// Plan the reply the intent's template calls for, unless a guardrail
/// holds it back.
fn plan_reply(reply: &ReplyCheck<'_>, msg: &MessageFacts<'_>, ticket_id: &str, d: &mut Decision) {
    if let Some((guardrail, note)) = REPLY_GUARDRAILS.iter().find_map(|g| reply.holds(*g)) {
        d.hold_back(guardrail, note);
        return;
    }
    let mut vars = BTreeMap::new();
    vars.insert(
        "customer_name",
        msg.customer_name.unwrap_or("there").to_owned(),
    );
    vars.insert(
        "order_ref",
        msg.order_ref.map(|o| format!(" {o}")).unwrap_or_default(),
    );
    if let Some(body) = reply.rules.render(reply.template, &vars) {
        d.plan(
            action_key("rp_reply", msg.conversation_id, msg.event_id),
            Action::AutoReply {
                ticket_id: ticket_id.to_owned(),
                template: reply.template.to_owned(),
                body,
            },
        );
    }
}

/// Score the rules' intents against the message (a model may refine a
/// non-tier-0 match) and fill `intents`, `intent`, `route`, `confidence`,
/// `tier0` and `decided_by`. Returns the intent that drives the decision.
fn classify<'r>(
    rules: &'r Rules,
    msg: &MessageFacts<'_>,
    model: Option<&ModelClassification>,
    d: &mut Decision,
) -> Option<(&'r Intent, f64)> {
    let s = &rules.settings;
    let haystack = match msg.subject {
        Some(subject) => format!("{subject}\n{}", msg.text),
        None => msg.text.to_owned(),
    };
    let mut scored: Vec<(&Intent, f64)> = rules
        .intents
        .iter()
        .filter_map(|i| i.score(&haystack, s.confidence_step).map(|c| (i, c)))
        .collect();
    scored.sort_by(|a, b| {
        (b.0.tier0, b.0.priority)
            .cmp(&(a.0.tier0, a.0.priority))
            .then(b.1.total_cmp(&a.1))
    });
    d.intents = scored
        .iter()
        .map(|(i, c)| IntentMatch {
            intent: i.name.clone(),
            confidence: *c,
        })
        .collect();
    let mut primary = scored.first().copied();
    // A model may refine a non-tier-0 decision; it can never downgrade a
    // tier-0 match found by the rules, nor introduce an unknown intent.
    if let Some(m) = model
        && !primary.is_some_and(|(i, _)| i.tier0)
        && let Some(intent) = rules.intents.iter().find(|i| i.name == m.intent)
    {
        primary = Some((intent, m.confidence.clamp(0.0, 1.0)));
        d.decided_by = DecidedBy::Model;
        if !d.intents.iter().any(|i| i.intent == m.intent) {
            d.intents.push(IntentMatch {
                intent: m.intent.clone(),
                confidence: m.confidence,
            });
        }
    }
    let route = primary
        .and_then(|(i, _)| i.route.clone())
        .unwrap_or_else(|| s.default_route.clone());
    d.route = Some(route);
    if let Some((intent, confidence)) = primary {
        d.intent = Some(intent.name.clone());
        d.confidence = confidence;
        d.tier0 = intent.tier0;
    }
    primary
}

impl Decision {
    fn plan(&mut self, key: String, action: Action) {
        self.actions.push(PlannedAction { key, action });
    }

    fn hold_back(&mut self, guardrail: Guardrail, note: String) {
        self.guardrail = Some(guardrail);
        self.note = Some(note);
    }
}

/// The guardrails that can stop a reply the rules call for, in the order
/// they are checked.
const REPLY_GUARDRAILS: [Guardrail; 5] = [
    Guardrail::HumanHold,
    Guardrail::LowConfidence,
    Guardrail::TemplateAlreadySent,
    Guardrail::RepliesPer24h,
    Guardrail::ActionsPerEvent,
];

/// What the reply guardrails look at.
struct ReplyCheck<'a> {
    rules: &'a Rules,
    conv: &'a Conversation,
    now: DateTime<Utc>,
    template: &'a str,
    confidence: f64,
    /// Actions the decision plans before the reply.
    planned: usize,
}

impl ReplyCheck<'_> {
    /// `Some(note)` when `guardrail` stops the reply.
    fn holds(&self, guardrail: Guardrail) -> Option<(Guardrail, String)> {
        let s = &self.rules.settings;
        let conv = self.conv;
        let note = match guardrail {
            Guardrail::HumanHold => conv.human_hold.as_ref().map(|hold| {
                format!(
                    "guardrail: handed to a human since {} ({}): no automated reply until `switchyard handback`",
                    hold.since.format("%Y-%m-%d %H:%M:%SZ"),
                    hold.reason
                )
            }),
            Guardrail::LowConfidence => (self.confidence < s.min_reply_confidence).then(|| {
                format!(
                    "confidence {:.2} below {:.2}: no auto-reply",
                    self.confidence, s.min_reply_confidence
                )
            }),
            Guardrail::TemplateAlreadySent => {
                let pending = conv.pending.values().any(|p| {
                    matches!(&p.action, Action::AutoReply { template: t, .. } if t == self.template)
                });
                (pending || conv.template_sent_since(self.template, self.now)).then(|| {
                    format!(
                        "guardrail: template {} already sent in this conversation within 24 h",
                        self.template
                    )
                })
            }
            Guardrail::RepliesPer24h => {
                let pending = conv
                    .pending
                    .values()
                    .filter(|p| p.action.customer_facing())
                    .count();
                let replies = conv.auto_replies_since(self.now) + pending;
                (replies >= s.max_auto_replies_per_24h).then(|| {
                    format!(
                        "guardrail: {replies} auto-replies in 24 h (max {})",
                        s.max_auto_replies_per_24h
                    )
                })
            }
            // One slot stays free for the replied tag that follows a sent
            // reply.
            Guardrail::ActionsPerEvent => {
                let slots = s.max_actions_per_event.saturating_sub(self.planned + 1);
                (slots == 0).then(|| {
                    format!("guardrail: max {} actions per event", s.max_actions_per_event)
                })
            }
            Guardrail::NotFromCustomer | Guardrail::Tier0 => None,
        };
        note.map(|n| (guardrail, n))
    }
}

#[cfg(test)]
mod tests;
