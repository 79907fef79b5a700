//! Given events → expected state, and property tests: the stored projection
//! (folded incrementally, serialized between every step as the worker does)
//! always equals a replay of the whole stream.
use chrono::{DateTime, Duration, TimeZone, Utc};
use conversation::{
    Action, ActionOutcome, Author, Conversation, ConversationStatus, DecidedBy, Decision,
    DecisionMode, Event, EventBody, IntentMatch, SuppressReason, replay,
};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

fn stream(bodies: Vec<(i64, EventBody)>) -> Vec<Event> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, (minutes, body))| Event {
            schema_version: 1,
            seq: i as u64 + 1,
            event_id: format!("e{i}"),
            causation_id: "evt:rp:c1:m1".into(),
            at: t0() + Duration::minutes(minutes),
            trace_id: None,
            body,
        })
        .collect()
}

fn received(id: &str, author: Author) -> EventBody {
    EventBody::MessageReceived {
        message_id: Some(id.into()),
        channel: "email".into(),
        author,
        text: format!("text of {id}"),
        subject: None,
        ticket_id: Some("T1".into()),
        created_at: None,
        received_at: t0(),
        source: "richpanel_http_target".into(),
    }
}

fn decided(intent: &str, route: Option<&str>) -> EventBody {
    EventBody::DecisionMade(Decision {
        intents: vec![IntentMatch {
            intent: intent.into(),
            confidence: 0.9,
        }],
        intent: Some(intent.into()),
        route: route.map(Into::into),
        confidence: 0.9,
        template: None,
        mode: DecisionMode::Live,
        decided_by: DecidedBy::Rules,
        tier0: false,
        note: None,
        guardrail: None,
        actions: vec![],
    })
}

fn reply(key: &str) -> EventBody {
    EventBody::ActionRequested {
        key: key.into(),
        action: Action::AutoReply {
            ticket_id: "T1".into(),
            template: "order_status".into(),
            body: "hi".into(),
        },
    }
}

fn tags(key: &str, tags: &[&str]) -> EventBody {
    EventBody::ActionRequested {
        key: key.into(),
        action: Action::AddTags {
            ticket_id: "T1".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        },
    }
}

fn done(key: &str) -> EventBody {
    EventBody::ActionCompleted {
        key: key.into(),
        status: Some(200),
    }
}

#[test]
fn routed_and_replied_conversation() {
    let events = stream(vec![
        (0, received("m1", Author::Customer)),
        (0, decided("order_status", Some("route-orders"))),
        (0, tags("k1", &["mw-processed", "route-orders"])),
        (0, reply("k2")),
        (1, done("k1")),
        (1, done("k2")),
        (2, received("m2", Author::Operator)),
    ]);
    let c = replay(&events);
    assert_eq!(c.version, 7);
    assert_eq!(c.messages, 2);
    assert_eq!(c.customer_messages, 1);
    assert_eq!(c.status, ConversationStatus::AutoReplied);
    assert_eq!(c.route.as_deref(), Some("route-orders"));
    assert_eq!(c.intents, vec!["order_status".to_string()]);
    assert!(c.tags_applied.contains("route-orders"));
    assert_eq!(c.auto_replies_since(t0() + Duration::hours(1)), 1);
    assert_eq!(c.auto_replies_since(t0() + Duration::hours(25)), 0);
    assert!(c.pending.is_empty());
    assert_eq!(c.ticket_id.as_deref(), Some("T1"));
    assert!(c.has_message("m1") && c.has_message("m2"));
    assert_eq!(
        c.last_message.as_ref().map(|m| m.author),
        Some(Author::Operator)
    );
}

#[test]
fn suppressed_and_unknown_actions_leave_nothing_pending() {
    let events = stream(vec![
        (0, received("m1", Author::Customer)),
        (0, reply("k1")),
        (
            0,
            EventBody::ActionSuppressed {
                key: "k1".into(),
                reason: SuppressReason::KillSwitch,
                detail: "kill-switch=auto_replies".into(),
                would_send: None,
            },
        ),
        (0, reply("k2")),
        (1, EventBody::ActionOutcomeUnknown { key: "k2".into() }),
        (
            1,
            EventBody::HandedToHuman {
                reason: "unknown outcome".into(),
            },
        ),
    ]);
    let c = replay(&events);
    assert!(c.pending.is_empty());
    assert_eq!(c.suppressed, 1);
    assert_eq!(c.auto_replies_total, 0);
    assert_eq!(c.status, ConversationStatus::HandedToHuman);
    assert_eq!(
        c.last_action.as_ref().map(|a| a.outcome),
        Some(ActionOutcome::Unknown)
    );
}

#[test]
fn retryable_failure_stays_pending_and_counts_attempts() {
    let events = stream(vec![
        (0, tags("k1", &["a"])),
        (
            0,
            EventBody::ActionFailed {
                key: "k1".into(),
                error: "429".into(),
                retryable: true,
            },
        ),
        (1, tags("k1", &["a"])),
    ]);
    let c = replay(&events);
    let p = c.pending.get("k1").expect("still pending");
    assert_eq!(p.attempts, 2);
    let c = c.apply(&stream(vec![(0, done("k1"))]).remove(0));
    assert!(c.tags_applied.contains("a") && c.pending.is_empty());
}

#[test]
fn planned_actions_are_pending_until_requested_and_done() {
    let mut decision = decided("order_status", Some("route-orders"));
    if let EventBody::DecisionMade(d) = &mut decision {
        d.actions.push(conversation::PlannedAction {
            key: "k1".into(),
            action: Action::AddTags {
                ticket_id: "T1".into(),
                tags: vec!["x".into()],
            },
        });
    }
    let events = stream(vec![(0, received("m1", Author::Customer)), (0, decision)]);
    let c = replay(&events);
    let p = c.pending.get("k1").expect("planned action pending");
    assert_eq!(
        (p.state, p.attempts),
        (conversation::ActionState::Planned, 0)
    );
    let c = c.apply(&stream(vec![(0, tags("k1", &["x"]))]).remove(0));
    assert_eq!(
        c.pending.get("k1").map(|p| (p.state, p.attempts)),
        Some((conversation::ActionState::Requested, 1))
    );
}

#[test]
fn future_event_versions_are_refused() {
    let mut e = stream(vec![(0, received("m1", Author::Customer))]).remove(0);
    e.schema_version = 99;
    let err = Event::decode(&e.to_json()).expect_err("newer version must be refused");
    assert!(err.to_string().contains("99"), "{err}");
}

fn arb_body() -> impl Strategy<Value = EventBody> {
    let key = prop::sample::select(vec!["k1", "k2", "k3"]);
    let at = 0u8..3;
    prop_oneof![
        (
            prop::sample::select(vec!["m1", "m2", "m3", "m4"]),
            any::<bool>()
        )
            .prop_map(|(id, c)| received(id, if c { Author::Customer } else { Author::Bot })),
        (
            prop::sample::select(vec!["faq", "tier0", "other"]),
            any::<bool>(),
            key.clone()
        )
            .prop_map(|(i, r, k)| {
                let mut d = decided(i, r.then_some("route-x"));
                if let EventBody::DecisionMade(d) = &mut d {
                    d.actions.push(conversation::PlannedAction {
                        key: k.into(),
                        action: Action::AddTags {
                            ticket_id: "T".into(),
                            tags: vec!["p".into()],
                        },
                    });
                }
                d
            }),
        (key.clone(), any::<bool>()).prop_map(|(k, r)| if r { reply(k) } else { tags(k, &["t"]) }),
        key.clone().prop_map(done),
        (key.clone(), any::<bool>()).prop_map(|(k, r)| EventBody::ActionFailed {
            key: k.into(),
            error: "e".into(),
            retryable: r
        }),
        key.clone().prop_map(|k| EventBody::ActionSuppressed {
            key: k.into(),
            reason: SuppressReason::Shadow,
            detail: String::new(),
            would_send: Some(serde_json::json!({"method": "PUT"})),
        }),
        key.prop_map(|k| EventBody::ActionOutcomeUnknown { key: k.into() }),
        at.clone()
            .prop_map(|_| EventBody::HandedToHuman { reason: "r".into() }),
        at.prop_map(|_| EventBody::HandedBack {
            by: "op".into(),
            reason: "checked".into()
        }),
    ]
}

proptest! {
    #[test]
    fn stored_projection_equals_replay(
        bodies in prop::collection::vec((0i64..3000, arb_body()), 0..60)
    ) {
        let mut bodies = bodies;
        let mut minutes = 0;
        for (m, _) in bodies.iter_mut() { minutes += *m; *m = minutes; }
        let events = stream(bodies);
        // The worker stores the projection as JSON after every append and
        // folds the next events into the decoded copy.
        let mut stored = serde_json::to_string(&Conversation::default()).expect("encode");
        for e in &events {
            let decoded = Event::decode(&e.to_json()).expect("event round trip");
            prop_assert_eq!(&decoded, e);
            let state: Conversation = serde_json::from_str(&stored).expect("decode");
            stored = serde_json::to_string(&state.apply(&decoded)).expect("encode");
        }
        let stored: Conversation = serde_json::from_str(&stored).expect("decode");
        prop_assert_eq!(stored, replay(&events));
    }
}
