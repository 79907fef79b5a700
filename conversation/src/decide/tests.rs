//! Unit tests of `decide`: intents, the model, every guardrail.
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
        mode: DecisionMode::Live,
    }
}

fn rules() -> Rules {
    Rules::default_rules().expect("default rules parse")
}

/// Event `seq` of conversation T1.
fn event(seq: u64, at: DateTime<Utc>, body: crate::EventBody) -> crate::Event {
    crate::Event {
        schema_version: crate::EVENT_SCHEMA_VERSION,
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
    )
    .decision;
    assert_eq!(d.intent.as_deref(), Some("order_status"));
    assert_eq!(d.route.as_deref(), Some("route-orders"));
    assert_eq!(d.actions.len(), 2);
    match &d.actions[1].action {
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
    )
    .decision;
    assert!(d.tier0);
    assert_eq!(d.intent.as_deref(), Some("chargeback"));
    assert!(d.actions.iter().all(|p| !p.action.customer_facing()));
    assert_eq!(d.decided_by, DecidedBy::Rules);
    assert_eq!(d.guardrail, Some(Guardrail::Tier0));
}

#[test]
fn a_tier0_decision_hands_the_conversation_to_a_human() {
    let events = decide(
        &rules(),
        &facts("I will file a chargeback"),
        &Conversation::default(),
        Utc::now(),
        None,
    )
    .into_events();
    assert!(matches!(&events[0], EventBody::DecisionMade(d) if d.tier0));
    assert!(matches!(&events[1], EventBody::HandedToHuman { reason } if reason.contains("tier-0")));
}

/// The guardrail that holds back the FAQ reply under rules changed
/// by `change`.
fn held_back_by(change: impl FnOnce(&mut Rules)) -> Option<Guardrail> {
    let mut r = rules();
    change(&mut r);
    let now = Utc::now();
    let d = decide(
        &r,
        &facts("where is my order?"),
        &Conversation::default(),
        now,
        None,
    )
    .decision;
    assert!(
        d.actions.iter().all(|p| !p.action.customer_facing()),
        "{d:?}"
    );
    d.guardrail
}

#[test]
fn a_reply_that_would_leave_no_slot_for_its_tag_is_held_back() {
    let guardrail = held_back_by(|r| r.settings.max_actions_per_event = 2);
    assert_eq!(guardrail, Some(Guardrail::ActionsPerEvent));
}

#[test]
fn a_message_below_the_reply_confidence_is_not_replied_to() {
    let guardrail = held_back_by(|r| r.settings.min_reply_confidence = 1.1);
    assert_eq!(guardrail, Some(Guardrail::LowConfidence));
}

#[test]
fn operator_messages_are_not_acted_on() {
    let mut f = facts("where is my order?");
    f.author = Author::Operator;
    let d = decide(&rules(), &f, &Conversation::default(), Utc::now(), None).decision;
    assert!(d.actions.is_empty() && d.intent.is_none());
    assert_eq!(d.guardrail, Some(Guardrail::NotFromCustomer));
}

#[test]
fn at_most_three_replies_per_day() {
    let now = Utc::now();
    let conv = Conversation {
        auto_replies_24h: ["a", "b", "c"]
            .map(|t| crate::SentReply {
                at: now,
                template: t.into(),
            })
            .to_vec(),
        ..Conversation::default()
    };
    let d = decide(&rules(), &facts("where is my order?"), &conv, now, None).decision;
    assert!(d.actions.iter().all(|p| !p.action.customer_facing()));
    assert!(d.note.as_deref().unwrap_or("").contains("guardrail"));
    assert_eq!(d.guardrail, Some(Guardrail::RepliesPer24h));
}

#[test]
fn one_template_is_sent_once_per_day() {
    let now = Utc::now();
    let conv = Conversation {
        auto_replies_24h: vec![crate::SentReply {
            at: now,
            template: "order_status".into(),
        }],
        ..Conversation::default()
    };
    let d = decide(&rules(), &facts("where is my order?"), &conv, now, None).decision;
    assert!(
        d.actions.iter().all(|p| !p.action.customer_facing()),
        "{d:?}"
    );
    assert_eq!(d.guardrail, Some(Guardrail::TemplateAlreadySent));
    let later = now + chrono::Duration::hours(25);
    let d = decide(&rules(), &facts("where is my order?"), &conv, later, None).decision;
    assert!(d.actions.iter().any(|p| p.action.customer_facing()));
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
            crate::EventBody::ActionRequested {
                key: key.into(),
                action: reply,
            },
        ))
        .apply(&ev(
            2,
            crate::EventBody::ActionOutcomeUnknown { key: key.into() },
        ));
    assert!(conv.template_sent_since("order_status", now));
    assert_eq!(conv.auto_replies_since(now), 1);
    let mut f = facts("where is my order?");
    f.event_id = "evt:rp:T1:m2";
    let d = decide(&rules(), &f, &conv, now, None).decision;
    assert!(
        d.actions.iter().all(|p| !p.action.customer_facing()),
        "{d:?}"
    );
}

#[test]
fn a_conversation_with_a_human_gets_no_reply_until_handed_back() {
    let now = Utc::now();
    let ev = |seq, body| event(seq, now, body);
    let held = Conversation::default().apply(&ev(
        1,
        crate::EventBody::HandedToHuman {
            reason: "tier-0".into(),
        },
    ));
    let d = decide(&rules(), &facts("where is my order?"), &held, now, None).decision;
    assert!(
        d.actions.iter().all(|p| !p.action.customer_facing()),
        "{d:?}"
    );
    assert!(
        d.note.as_deref().unwrap_or("").contains("handback"),
        "{d:?}"
    );
    assert_eq!(d.guardrail, Some(Guardrail::HumanHold));
    let back = held.apply(&ev(
        2,
        crate::EventBody::HandedBack {
            by: "ana".into(),
            reason: "customer verified".into(),
        },
    ));
    assert_eq!(back.human_hold, None);
    let d = decide(&rules(), &facts("where is my order?"), &back, now, None).decision;
    assert!(
        d.actions.iter().any(|p| p.action.customer_facing()),
        "{d:?}"
    );
}

#[test]
fn guardrails_cannot_be_raised_by_the_rules_file() {
    let text = include_str!("../../rules/default.toml")
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
    let text = include_str!("../../rules/default.toml")
        .replace("template = \"order_status\"", "template = \"nope\"");
    let err = Rules::parse(&text, "x.toml").expect_err("must fail");
    assert!(
        err.to_string().contains("nope") && err.to_string().contains("x.toml"),
        "{err}"
    );
}
