//! Deterministic decisions: what a customer message means and what to do
//! about it. Pure: same rules, message, state and time → same decision.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use projections::{Action, Author, Conversation, IntentMatch};

use crate::rules::Rules;

/// What the decider needs to know about one message.
#[derive(Debug, Clone)]
pub struct MessageFacts<'a> {
    pub event_id: &'a str,
    pub conversation_id: &'a str,
    pub text: &'a str,
    pub subject: Option<&'a str>,
    pub author: Author,
    /// The Richpanel ticket to act on; without one nothing is performed.
    pub ticket_id: Option<&'a str>,
    pub customer_name: Option<&'a str>,
    pub order_ref: Option<&'a str>,
}

/// An optional model classification to merge with the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelClassification {
    pub intent: String,
    pub confidence: f64,
}

/// The outcome of deciding.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub intents: Vec<IntentMatch>,
    pub intent: Option<String>,
    pub route: Option<String>,
    pub confidence: f64,
    pub template: Option<String>,
    pub tier0: bool,
    pub decided_by: &'static str,
    /// Actions to request, with their idempotency keys, in order.
    pub actions: Vec<(String, Action)>,
    /// Why a human must take over, if one must.
    pub handoff: Option<String>,
    /// Why less than the usual was done.
    pub note: Option<String>,
}

/// Idempotency key of an action: stable across redeliveries of the event.
pub fn action_key(kind: &str, conversation_id: &str, event_id: &str) -> String {
    format!("act:{kind}:{conversation_id}:{event_id}")
}

pub fn decide(
    rules: &Rules,
    msg: &MessageFacts<'_>,
    conv: &Conversation,
    now: DateTime<Utc>,
    model: Option<&ModelClassification>,
) -> Decision {
    let mut d = Decision {
        intents: Vec::new(),
        intent: None,
        route: None,
        confidence: 0.0,
        template: None,
        tier0: false,
        decided_by: "rules",
        actions: Vec::new(),
        handoff: None,
        note: None,
    };
    if msg.author != Author::Customer {
        d.note = Some(format!(
            "{}-authored message: recorded, never acted on (loop prevention)",
            match msg.author {
                Author::Operator => "operator",
                _ => "bot",
            }
        ));
        return d;
    }
    let s = &rules.settings;
    let haystack = match msg.subject {
        Some(subject) => format!("{subject}\n{}", msg.text),
        None => msg.text.to_owned(),
    };
    let mut scored: Vec<(&crate::rules::Intent, f64)> = rules
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
        d.decided_by = "model";
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
    d.route = Some(route.clone());
    if let Some((intent, confidence)) = primary {
        d.intent = Some(intent.name.clone());
        d.confidence = confidence;
        d.tier0 = intent.tier0;
    }
    let Some(ticket_id) = msg.ticket_id else {
        d.note = Some("no Richpanel ticket for this conversation: decision recorded only".into());
        return d;
    };
    let mut tags = vec![s.processed_tag.clone(), s.routed_tag.clone(), route];
    tags.dedup();
    d.actions.push((
        action_key("rp_tag", msg.conversation_id, msg.event_id),
        Action::AddTags {
            ticket_id: ticket_id.to_owned(),
            tags,
        },
    ));
    if d.tier0 {
        d.handoff = Some(format!(
            "tier-0 intent {}: never automated",
            d.intent.as_deref().unwrap_or("?")
        ));
        return d;
    }
    let Some((intent, confidence)) = primary else {
        d.note = Some("no intent matched: routed to the default queue".into());
        return d;
    };
    let Some(template) = intent.template.clone() else {
        return d;
    };
    d.template = Some(template.clone());
    let pending_replies = conv
        .pending
        .values()
        .filter(|p| p.action.customer_facing())
        .count();
    let replies = conv.auto_replies_since(now) + pending_replies;
    let same_template_pending = conv
        .pending
        .values()
        .any(|p| matches!(&p.action, Action::AutoReply { template: t, .. } if *t == template));
    // One slot stays free for the replied tag that follows a sent reply.
    let slots = s.max_actions_per_event.saturating_sub(d.actions.len() + 1);
    if let Some(hold) = &conv.human_hold {
        d.note = Some(format!(
            "guardrail: handed to a human since {} ({}): no automated reply until `switchyard handback`",
            hold.since.format("%Y-%m-%d %H:%M:%SZ"),
            hold.reason
        ));
    } else if confidence < s.min_reply_confidence {
        d.note = Some(format!(
            "confidence {confidence:.2} below {:.2}: no auto-reply",
            s.min_reply_confidence
        ));
    } else if same_template_pending || conv.template_sent_since(&template, now) {
        d.note = Some(format!(
            "guardrail: template {template} already sent in this conversation within 24 h"
        ));
    } else if replies >= s.max_auto_replies_per_24h {
        d.note = Some(format!(
            "guardrail: {replies} auto-replies in 24 h (max {})",
            s.max_auto_replies_per_24h
        ));
    } else if slots == 0 {
        d.note = Some(format!(
            "guardrail: max {} actions per event",
            s.max_actions_per_event
        ));
    } else {
        let mut vars = BTreeMap::new();
        vars.insert(
            "customer_name",
            msg.customer_name.unwrap_or("there").to_owned(),
        );
        vars.insert(
            "order_ref",
            msg.order_ref.map(|o| format!(" {o}")).unwrap_or_default(),
        );
        if let Some(body) = rules.render(&template, &vars) {
            d.actions.push((
                action_key("rp_reply", msg.conversation_id, msg.event_id),
                Action::AutoReply {
                    ticket_id: ticket_id.to_owned(),
                    template,
                    body,
                },
            ));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(text: &str) -> MessageFacts<'_> {
        MessageFacts {
            event_id: "evt:rp:T1:m1",
            conversation_id: "T1",
            text,
            subject: None,
            author: Author::Customer,
            ticket_id: Some("T1"),
            customer_name: Some("Ana"),
            order_ref: Some("#1001"),
        }
    }

    fn rules() -> Rules {
        Rules::default_rules().expect("default rules parse")
    }

    /// Event `seq` of conversation T1.
    fn event(seq: u64, at: DateTime<Utc>, body: projections::EventBody) -> projections::Event {
        projections::Event {
            schema_version: projections::EVENT_SCHEMA_VERSION,
            seq,
            event_id: format!("ev:T1:{seq}"),
            causation_id: "evt:rp:T1:m1".into(),
            at,
            trace_id: None,
            body,
        }
    }

    #[test]
    fn faq_gets_route_tags_and_a_reply() {
        let d = decide(
            &rules(),
            &facts("Hi, where is my order?"),
            &Conversation::default(),
            Utc::now(),
            None,
        );
        assert_eq!(d.intent.as_deref(), Some("order_status"));
        assert_eq!(d.route.as_deref(), Some("route-orders"));
        assert_eq!(d.actions.len(), 2);
        match &d.actions[1].1 {
            Action::AutoReply { body, .. } => {
                assert!(body.contains("Ana") && body.contains("#1001"), "{body}")
            }
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn tier0_wins_and_is_never_automated() {
        let d = decide(
            &rules(),
            &facts("where is my order? otherwise I will file a chargeback"),
            &Conversation::default(),
            Utc::now(),
            Some(&ModelClassification {
                intent: "order_status".into(),
                confidence: 0.99,
            }),
        );
        assert!(d.tier0);
        assert_eq!(d.intent.as_deref(), Some("chargeback"));
        assert!(d.actions.iter().all(|(_, a)| !a.customer_facing()));
        assert!(d.handoff.is_some());
        assert_eq!(d.decided_by, "rules");
    }

    #[test]
    fn operator_messages_are_not_acted_on() {
        let mut f = facts("where is my order?");
        f.author = Author::Operator;
        let d = decide(&rules(), &f, &Conversation::default(), Utc::now(), None);
        assert!(d.actions.is_empty() && d.intent.is_none());
    }

    #[test]
    fn at_most_three_replies_per_day() {
        let now = Utc::now();
        let mut conv = Conversation::default();
        conv.auto_replies_24h = ["a", "b", "c"]
            .map(|t| projections::SentReply {
                at: now,
                template: t.into(),
            })
            .to_vec();
        let d = decide(&rules(), &facts("where is my order?"), &conv, now, None);
        assert!(d.actions.iter().all(|(_, a)| !a.customer_facing()));
        assert!(d.note.as_deref().unwrap_or("").contains("guardrail"));
    }

    #[test]
    fn one_template_is_sent_once_per_day() {
        let now = Utc::now();
        let mut conv = Conversation::default();
        conv.auto_replies_24h = vec![projections::SentReply {
            at: now,
            template: "order_status".into(),
        }];
        let d = decide(&rules(), &facts("where is my order?"), &conv, now, None);
        assert!(d.actions.iter().all(|(_, a)| !a.customer_facing()), "{d:?}");
        let later = now + chrono::Duration::hours(25);
        let d = decide(&rules(), &facts("where is my order?"), &conv, later, None);
        assert!(d.actions.iter().any(|(_, a)| a.customer_facing()));
    }

    #[test]
    fn a_reply_of_unknown_outcome_counts_as_sent() {
        let now = Utc::now();
        let key = "act:rp_reply:T1:evt:rp:T1:m1";
        let reply = Action::AutoReply {
            ticket_id: "T1".into(),
            template: "order_status".into(),
            body: "b".into(),
        };
        let ev = |seq, body| event(seq, now, body);
        let conv = Conversation::default()
            .apply(&ev(
                1,
                projections::EventBody::ActionRequested {
                    key: key.into(),
                    action: reply,
                },
            ))
            .apply(&ev(
                2,
                projections::EventBody::ActionOutcomeUnknown { key: key.into() },
            ));
        assert!(conv.template_sent_since("order_status", now));
        assert_eq!(conv.auto_replies_since(now), 1);
        let mut f = facts("where is my order?");
        f.event_id = "evt:rp:T1:m2";
        let d = decide(&rules(), &f, &conv, now, None);
        assert!(d.actions.iter().all(|(_, a)| !a.customer_facing()), "{d:?}");
    }

    #[test]
    fn a_conversation_with_a_human_gets_no_reply_until_handed_back() {
        let now = Utc::now();
        let ev = |seq, body| event(seq, now, body);
        let held = Conversation::default().apply(&ev(
            1,
            projections::EventBody::HandedToHuman {
                reason: "tier-0".into(),
            },
        ));
        let d = decide(&rules(), &facts("where is my order?"), &held, now, None);
        assert!(d.actions.iter().all(|(_, a)| !a.customer_facing()), "{d:?}");
        assert!(
            d.note.as_deref().unwrap_or("").contains("handback"),
            "{d:?}"
        );
        let back = held.apply(&ev(
            2,
            projections::EventBody::HandedBack {
                by: "ana".into(),
                reason: "customer verified".into(),
            },
        ));
        assert_eq!(back.human_hold, None);
        let d = decide(&rules(), &facts("where is my order?"), &back, now, None);
        assert!(d.actions.iter().any(|(_, a)| a.customer_facing()), "{d:?}");
    }

    #[test]
    fn guardrails_cannot_be_raised_by_the_rules_file() {
        let text = include_str!("../rules/default.toml")
            .replace("max_actions_per_event = 3", "max_actions_per_event = 10")
            .replace(
                "max_auto_replies_per_24h = 3",
                "max_auto_replies_per_24h = 50",
            );
        let r = Rules::parse(&text, "test").expect("parses");
        assert_eq!(r.settings.max_actions_per_event, 3);
        assert_eq!(r.settings.max_auto_replies_per_24h, 3);
    }

    #[test]
    fn bad_rules_are_named() {
        let text = include_str!("../rules/default.toml")
            .replace("template = \"order_status\"", "template = \"nope\"");
        let err = Rules::parse(&text, "x.toml").expect_err("must fail");
        assert!(
            err.to_string().contains("nope") && err.to_string().contains("x.toml"),
            "{err}"
        );
    }
}
