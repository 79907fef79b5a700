//! The worker end to end over both backends: ordering, duplicates, crash
//! resume without a second reply, poison → DLQ, replay = projection.
#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use conversation::{EventBody, SuppressReason};
use downstream::fake::FakeConfig;

fn quiet_fake() -> FakeConfig {
    FakeConfig {
        richpanel_quota: None,
        ..FakeConfig::default()
    }
}

on_both_backends!(
    conversations_are_processed_in_order,
    duplicate_delivery_changes_nothing,
    duplicate_without_message_id_changes_nothing,
    crash_after_reply_never_sends_it_twice,
    a_shadow_flip_before_a_redelivery_still_records_the_hand_off,
    crash_after_tags_resumes_and_replies_once,
    poison_goes_to_dlq_with_reason,
    kill_switch_suppresses_replies_but_records_decisions,
    after_a_reply_of_unknown_outcome_the_next_message_gets_no_reply,
    a_conversation_with_a_human_gets_no_reply_until_handed_back,
    a_dead_consumers_batch_is_processed_in_order,
    every_held_message_keeps_its_visibility_while_the_group_works,
    a_panic_dead_letters_the_message_and_the_conversation_goes_on,
    a_message_failing_on_its_last_delivery_is_dead_lettered_with_its_reason,
);

async fn message_ids(h: &Harness, stream: &str) -> Vec<String> {
    events(&h.backend, stream)
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::MessageReceived { message_id, .. } => message_id,
            _ => None,
        })
        .collect()
}

async fn assert_replay_matches(h: &Harness, stream: &str) {
    let rebuilt = conversation::rebuild(h.backend.events.as_ref(), stream)
        .await
        .expect("rebuild");
    let stored = h
        .backend
        .events
        .projection(stream)
        .await
        .expect("read")
        .expect("projection exists");
    let stored: conversation::Conversation = serde_json::from_str(&stored.state).expect("decodes");
    assert_eq!(
        stored, rebuilt,
        "stored projection of {stream} differs from its replay"
    );
}

async fn conversations_are_processed_in_order(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    let (conversations, per) = (10, 20);
    // Conversations concurrently; each conversation's messages in order.
    let sends = (0..conversations).map(|c| {
        let backend = h.backend.clone();
        async move {
            for m in 0..per {
                let env = envelope(
                    &format!("T-{c}"),
                    &format!("m-{m:02}"),
                    &format!("note {m} of ticket {c}"),
                );
                enqueue(&backend, &env).await;
            }
        }
    });
    futures::future::join_all(sends).await;
    let (stop, task) = spawn_worker(&h.worker);
    for c in 0..conversations {
        let stream = format!("T-{c}");
        eventually(Duration::from_secs(120), "all messages recorded", || {
            let h = &h;
            let stream = stream.clone();
            async move { message_ids(h, &stream).await.len() >= per }
        })
        .await;
    }
    stop_worker(stop, task).await;
    for c in 0..conversations {
        let stream = format!("T-{c}");
        let ids = message_ids(&h, &stream).await;
        let expected: Vec<String> = (0..per).map(|m| format!("m-{m:02}")).collect();
        assert_eq!(ids, expected, "stream {stream} out of order or duplicated");
        assert_replay_matches(&h, &stream).await;
    }
}

async fn duplicate_delivery_changes_nothing(kind: &str) {
    let env = envelope("T-dup", "m-1", "where is my order #1001?");
    assert_duplicate_changes_nothing(kind, env).await;
}

/// No message id: the projection cannot recognise the redelivery, so the
/// worker's append finds the event id already in the log and resumes.
/// A Richpanel message without a message id: only its append finds out
/// it was recorded before (`AlreadyAppended` on its event id).
fn envelope_without_message_id(ticket: &str, text: &str) -> envelope::Envelope {
    // With the sender's created_at (without it, a text-only body is left to
    // the ticket fetch: envelope::normalize_richpanel).
    let body = serde_json::json!({
        "ticket_id": ticket,
        "message": text,
        "created_at": "2025-12-21T09:59:00Z",
        "channel": "email",
    })
    .to_string();
    let env = envelope::normalize_richpanel(
        body.as_bytes(),
        &envelope::NormalizeConfig::default(),
        chrono::Utc::now(),
    )
    .expect("normalizes");
    assert!(
        env.message.id.is_none() && env.email.message_id.is_none(),
        "the test needs an envelope without a message id"
    );
    env
}

async fn duplicate_without_message_id_changes_nothing(kind: &str) {
    let env = envelope_without_message_id("T-dup", "where is my order #1001?");
    assert_duplicate_changes_nothing(kind, env).await;
}

/// A live delivery sends its reply and crashes before recording the
/// outcome; shadow mode goes on before the redelivery. The redelivery is
/// decided in shadow (one append), finds the message recorded before, and
/// resumes from the log: the reply of unknown outcome is handed to a human,
/// and that hand-off is recorded, not left staged.
async fn a_shadow_flip_before_a_redelivery_still_records_the_hand_off(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    h.worker
        .faults
        .crash_after_reply
        .store(true, Ordering::Relaxed);
    let stream = "T-flip";
    enqueue(
        &h.backend,
        &envelope_without_message_id(stream, "Hi, where is my order #1001?"),
    )
    .await;
    let (stop, task) = spawn_worker(&h.worker);
    eventually(Duration::from_secs(30), "the reply sent", || async {
        replies(&h) == 1
    })
    .await;
    h.backend
        .flags
        .set("shadow", "on", "test", "flip before the redelivery")
        .await
        .expect("shadow on");
    eventually(
        Duration::from_secs(60),
        "the redelivery records the hand-off",
        || async {
            events(&h.backend, stream)
                .await
                .iter()
                .any(|e| matches!(e.body, EventBody::HandedToHuman { .. }))
        },
    )
    .await;
    wait_drained(&h.backend, Duration::from_secs(30)).await;
    stop_worker(stop, task).await;
    assert_eq!(replies(&h), 1, "the reply went out {} times", replies(&h));
    assert_replay_matches(&h, stream).await;
}

async fn assert_duplicate_changes_nothing(kind: &str, env: envelope::Envelope) {
    let h = harness(kind, quiet_fake()).await;
    enqueue(&h.backend, &env).await;
    let (stop, task) = spawn_worker(&h.worker);
    eventually(
        Duration::from_secs(30),
        "first delivery processed",
        || async { drained(&h.backend).await && !h.fake.writes().is_empty() },
    )
    .await;
    let before = events(&h.backend, "T-dup").await;
    let writes_before = h.fake.writes().len();
    // The same event again, past the queue's dedup (as after SQS's 5-minute
    // window, or a redelivery): the log is the guard.
    enqueue_with_dedup(&h.backend, &env, "redelivery-1").await;
    wait_drained(&h.backend, Duration::from_secs(30)).await;
    stop_worker(stop, task).await;
    assert_eq!(
        events(&h.backend, "T-dup").await,
        before,
        "a duplicate changed the log"
    );
    assert_eq!(
        h.fake.writes().len(),
        writes_before,
        "a duplicate caused downstream writes"
    );
    assert_replay_matches(&h, "T-dup").await;
}

fn replies(h: &Harness) -> usize {
    h.fake
        .writes()
        .iter()
        .filter(|r| {
            r.body.as_ref().is_some_and(|b| {
                b.get("comment").is_some() || b.to_string().contains("\"comment\"")
            })
        })
        .count()
}

async fn crash_after_reply_never_sends_it_twice(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    h.worker
        .faults
        .crash_after_reply
        .store(true, Ordering::Relaxed);
    let env = envelope("T-crash", "m-1", "Hi, where is my order #1001?");
    enqueue(&h.backend, &env).await;
    let (stop, task) = spawn_worker(&h.worker);
    eventually(
        Duration::from_secs(60),
        "redelivery hands the conversation to a human",
        || async {
            events(&h.backend, "T-crash")
                .await
                .iter()
                .any(|e| matches!(e.body, EventBody::HandedToHuman { .. }))
        },
    )
    .await;
    wait_drained(&h.backend, Duration::from_secs(30)).await;
    stop_worker(stop, task).await;
    assert_eq!(replies(&h), 1, "the reply went out {} times", replies(&h));
    let evs = events(&h.backend, "T-crash").await;
    assert!(
        evs.iter()
            .any(|e| matches!(e.body, EventBody::ActionOutcomeUnknown { .. }))
    );
    assert_replay_matches(&h, "T-crash").await;
}

async fn crash_after_tags_resumes_and_replies_once(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    h.worker
        .faults
        .crash_after_write
        .store(true, Ordering::Relaxed);
    let env = envelope("T-resume", "m-1", "Hi, where is my order #1001?");
    enqueue(&h.backend, &env).await;
    let (stop, task) = spawn_worker(&h.worker);
    eventually(
        Duration::from_secs(60),
        "reply completed after the resume",
        || async { drained(&h.backend).await && replies(&h) >= 1 },
    )
    .await;
    stop_worker(stop, task).await;
    assert_eq!(replies(&h), 1);
    let c = conversation::rebuild(h.backend.events.as_ref(), "T-resume")
        .await
        .expect("rebuild");
    assert!(
        c.pending.is_empty(),
        "actions left pending: {:?}",
        c.pending
    );
    assert_eq!(c.auto_replies_total, 1);
    assert!(c.tags_applied.contains("mw-auto-replied"));
    assert_replay_matches(&h, "T-resume").await;
}

async fn poison_goes_to_dlq_with_reason(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    let good = envelope("T-poison", "m-2", "hello");
    // Same group: the poison message must not block the one behind it.
    h.backend
        .queue
        .send(ports::OutgoingMessage {
            group_id: good.group_id(),
            dedup_id: "poison-1".into(),
            body: "{\"schema_version\": 99, \"event_id\": \"x\"}".into(),
            attributes: Default::default(),
        })
        .await
        .expect("send poison");
    enqueue(&h.backend, &good).await;
    let (stop, task) = spawn_worker(&h.worker);
    eventually(
        Duration::from_secs(30),
        "good message processed after the poison",
        || async { message_ids(&h, "T-poison").await == vec!["m-2".to_string()] },
    )
    .await;
    stop_worker(stop, task).await;
    let dlq = h
        .backend
        .queue
        .dlq_list(&ports::DlqFilter::default(), 10)
        .await
        .expect("dlq list");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].dedup_id, "poison-1");
    assert!(
        dlq[0].reason.contains("99"),
        "reason should name the schema version: {}",
        dlq[0].reason
    );
    assert_eq!(
        dlq[0].receive_count, 1,
        "poison must be dead-lettered at once"
    );
}

async fn kill_switch_suppresses_replies_but_records_decisions(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    h.backend
        .flags
        .set("kill-switch", "auto_replies", "test", "replies look wrong")
        .await
        .expect("flip");
    let env = envelope("T-kill", "m-1", "Hi, where is my order #1001?");
    enqueue(&h.backend, &env).await;
    let (stop, task) = spawn_worker(&h.worker);
    eventually(Duration::from_secs(30), "processed", || async {
        drained(&h.backend).await && !events(&h.backend, "T-kill").await.is_empty()
    })
    .await;
    stop_worker(stop, task).await;
    assert_eq!(
        replies(&h),
        0,
        "a reply went out while the kill switch forbade it"
    );
    let evs = events(&h.backend, "T-kill").await;
    assert!(
        evs.iter()
            .any(|e| matches!(e.body, EventBody::DecisionMade(_)))
    );
    let suppressed: BTreeSet<_> = evs
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ActionSuppressed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert!(
        suppressed.contains(&SuppressReason::KillSwitch),
        "{suppressed:?}"
    );
    assert_replay_matches(&h, "T-kill").await;
}

async fn decision_notes(h: &Harness, stream: &str) -> Vec<String> {
    events(&h.backend, stream)
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::DecisionMade(d) => Some(d.note.unwrap_or_default()),
            _ => None,
        })
        .collect()
}

/// Crash after the reply went out, then a second message asking the same:
/// the reply of unknown outcome counts as sent, so no second reply.
async fn after_a_reply_of_unknown_outcome_the_next_message_gets_no_reply(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    h.worker
        .faults
        .crash_after_reply
        .store(true, Ordering::Relaxed);
    let (stop, task) = spawn_worker(&h.worker);
    enqueue(
        &h.backend,
        &envelope("T-unk", "m-1", "Hi, where is my order #1001?"),
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "the interrupted reply is recorded as unknown",
        || async {
            events(&h.backend, "T-unk")
                .await
                .iter()
                .any(|e| matches!(e.body, EventBody::ActionOutcomeUnknown { .. }))
        },
    )
    .await;
    enqueue(
        &h.backend,
        &envelope("T-unk", "m-2", "Still waiting: where is my order #1001?"),
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "the second message decided",
        || async { message_ids(&h, "T-unk").await.len() == 2 && drained(&h.backend).await },
    )
    .await;
    stop_worker(stop, task).await;
    assert_eq!(
        replies(&h),
        1,
        "the template went out {} times",
        replies(&h)
    );
    let notes = decision_notes(&h, "T-unk").await;
    assert!(notes[1].contains("guardrail"), "{notes:?}");
    assert_replay_matches(&h, "T-unk").await;
}

/// A Tier-0 message hands the conversation to a human: no automated reply
/// follows until an operator hands it back.
async fn a_conversation_with_a_human_gets_no_reply_until_handed_back(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    let (stop, task) = spawn_worker(&h.worker);
    let stream = "T-human";
    enqueue(
        &h.backend,
        &envelope(stream, "m-1", "I will file a chargeback with my bank"),
    )
    .await;
    enqueue(
        &h.backend,
        &envelope(stream, "m-2", "Also, where is my order #1001?"),
    )
    .await;
    eventually(Duration::from_secs(60), "both messages decided", || async {
        message_ids(&h, stream).await.len() == 2 && drained(&h.backend).await
    })
    .await;
    assert_eq!(
        replies(&h),
        0,
        "a reply went to a conversation a human holds"
    );
    let notes = decision_notes(&h, stream).await;
    assert!(notes[1].contains("handed to a human"), "{notes:?}");

    let back = conversation::hand_back(h.backend.events.as_ref(), stream, "ana", "refund handled")
        .await
        .expect("hand back");
    assert!(
        matches!(back, conversation::HandBack::Released(_)),
        "{back:?}"
    );
    assert_eq!(
        conversation::hand_back(h.backend.events.as_ref(), stream, "ana", "again")
            .await
            .expect("second hand back"),
        conversation::HandBack::NotHeld
    );
    enqueue(
        &h.backend,
        &envelope(stream, "m-3", "Where is my order #1001?"),
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "the reply after the hand-back",
        || async { drained(&h.backend).await && replies(&h) == 1 },
    )
    .await;
    stop_worker(stop, task).await;
    assert_eq!(replies(&h), 1);
    assert_replay_matches(&h, stream).await;
}

/// A consumer received a whole group's batch and died: the messages come
/// back together, and are processed oldest first.
async fn a_dead_consumers_batch_is_processed_in_order(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    let stream = "T-dead";
    let ids: Vec<String> = (1..=4).map(|i| format!("m-{i}")).collect();
    for id in &ids {
        enqueue(&h.backend, &envelope(stream, id, &format!("note {id}"))).await;
    }
    // The dead consumer: a batch of the group received, nothing deleted
    // (SQS hands out several of a group at once; the embedded queue one).
    let got = h
        .backend
        .queue
        .receive(10, Duration::from_secs(2), Duration::from_secs(2))
        .await
        .expect("receive")
        .len();
    let least = if kind == "aws" { 2 } else { 1 };
    assert!(got >= least, "the dead consumer held {got} of the group");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (stop, task) = spawn_worker(&h.worker);
    wait_drained(&h.backend, Duration::from_secs(60)).await;
    stop_worker(stop, task).await;
    assert_eq!(message_ids(&h, stream).await, ids, "{kind}: out of order");
}

/// Processing a batch takes longer than the visibility timeout: every
/// message of it stays hidden until done, none is delivered twice.
async fn every_held_message_keeps_its_visibility_while_the_group_works(kind: &str) {
    let mut h = harness(
        kind,
        FakeConfig {
            latency_ms: 1200,
            ..quiet_fake()
        },
    )
    .await;
    let counting = CountingQueue::wrap(&mut h.backend);
    h.worker.backend = h.backend.clone();
    h.worker.config.visibility = Duration::from_secs(2);
    let stream = "T-slow";
    let ids: Vec<String> = (1..=3).map(|i| format!("m-{i}")).collect();
    for id in &ids {
        enqueue(&h.backend, &envelope(stream, id, &format!("note {id}"))).await;
    }
    let (stop, task) = spawn_worker(&h.worker);
    wait_drained(&h.backend, Duration::from_secs(60)).await;
    stop_worker(stop, task).await;
    assert_eq!(message_ids(&h, stream).await, ids);
    assert_eq!(
        counting.max_receive_count(),
        1,
        "{kind}: a held message was delivered again: {:?}",
        counting
            .deliveries
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    );
}

/// A panic while processing dead-letters that message with the reason;
/// the conversation's next message is still processed.
async fn a_panic_dead_letters_the_message_and_the_conversation_goes_on(kind: &str) {
    let h = harness(kind, quiet_fake()).await;
    h.worker.faults.panic_next.store(true, Ordering::Relaxed);
    let stream = "T-panic";
    enqueue(&h.backend, &envelope(stream, "m-1", "note one")).await;
    enqueue(&h.backend, &envelope(stream, "m-2", "note two")).await;
    let (stop, task) = spawn_worker(&h.worker);
    eventually(
        Duration::from_secs(60),
        "the second message processed",
        || async { message_ids(&h, stream).await.contains(&"m-2".to_owned()) },
    )
    .await;
    wait_drained(&h.backend, Duration::from_secs(30)).await;
    stop_worker(stop, task).await;
    let dead = h
        .backend
        .queue
        .dlq_list(&ports::DlqFilter::default(), 10)
        .await
        .expect("dlq");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].reason.contains("panicked"), "{}", dead[0].reason);
}

/// A downstream that keeps failing: the conversation is held (retried with
/// backoff), and on its last delivery the message is dead-lettered by the
/// worker with the failure as its reason — never moved silently.
async fn a_message_failing_on_its_last_delivery_is_dead_lettered_with_its_reason(kind: &str) {
    let mut h = harness(
        kind,
        FakeConfig {
            force_status: Some(503),
            ..quiet_fake()
        },
    )
    .await;
    h.worker.config.max_retry_delay = Duration::from_millis(300);
    let stream = "T-down";
    // "This ticket has news": the worker must fetch the ticket, which fails.
    let minimal = envelope::normalize_richpanel(
        br#"{"ticket_id":"T-down","ticket_url":"https://app.richpanel.com/T-down","trigger":"new"}"#,
        &envelope::NormalizeConfig::default(),
        chrono::Utc::now(),
    )
    .expect("normalizes");
    assert_eq!(minimal.conversation_id.as_str(), stream);
    enqueue(&h.backend, &minimal).await;
    let (stop, task) = spawn_worker(&h.worker);
    eventually(
        Duration::from_secs(90),
        "the message dead-lettered",
        || async {
            h.backend
                .queue
                .dlq_list(&ports::DlqFilter::default(), 10)
                .await
                .is_ok_and(|d| !d.is_empty())
        },
    )
    .await;
    stop_worker(stop, task).await;
    let dead = h
        .backend
        .queue
        .dlq_list(&ports::DlqFilter::default(), 10)
        .await
        .expect("dlq");
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("still failing after")
            && dead[0].reason.contains("fetching ticket"),
        "{kind}: {}",
        dead[0].reason
    );
}

/// A first delivery makes no lease call when it is done before the first
/// heartbeat; one that runs longer takes the lease at that heartbeat,
/// renews it, and gives it up when done. AWS only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn a_first_delivery_takes_its_lease_only_when_it_runs_long() {
    assert!(common::aws_enabled(), "{}", ports::aws::SERVERS_NOT_SET);
    for (latency_ms, visibility, stream) in [(0, 30, "T-quick"), (1200, 2, "T-long")] {
        let mut h = harness(
            "aws",
            FakeConfig {
                latency_ms,
                ..quiet_fake()
            },
        )
        .await;
        let fleet = RecordingFleet::wrap(&mut h.backend);
        h.worker.backend = h.backend.clone();
        h.worker.config.visibility = Duration::from_secs(visibility);
        enqueue(&h.backend, &envelope(stream, "m-1", "where is my order")).await;
        let (stop, task) = spawn_worker(&h.worker);
        wait_drained(&h.backend, Duration::from_secs(60)).await;
        stop_worker(stop, task).await;
        assert_eq!(message_ids(&h, stream).await, ["m-1"]);
        let calls = fleet.calls_for(stream);
        let me = h.worker.instance.to_string();
        if latency_ms == 0 {
            assert_eq!(calls, [], "a quick first delivery needs no lease");
        } else {
            assert!(calls.len() >= 3, "taken, renewed, released: {calls:?}");
            assert!(calls.iter().all(|(owner, _)| *owner == me), "{calls:?}");
            assert_eq!(calls.first().map(|c| c.1), Some("lease"), "{calls:?}");
            assert_eq!(calls.last().map(|c| c.1), Some("release"), "{calls:?}");
        }
    }
}

/// Another process holds the conversation's fleet lease (it is still
/// working on it, say after its message's visibility ran out): this
/// worker receives the conversation's message but does not touch it until
/// the lease is released, then processes it once. AWS only: the embedded
/// backend is one process and has no fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn a_conversation_leased_elsewhere_waits_for_its_holder() {
    assert!(common::aws_enabled(), "{}", ports::aws::SERVERS_NOT_SET);
    let mut h = harness("aws", quiet_fake()).await;
    let counting = CountingQueue::wrap(&mut h.backend);
    h.worker.backend = h.backend.clone();
    let fleet = h.backend.fleet.clone().expect("aws has a fleet");
    let stream = "T-leased";
    let other = "another-process";
    assert!(
        fleet
            .lease(stream, other, Duration::from_secs(60))
            .await
            .expect("lease")
    );
    let counting_before = h.fake.requests().len();
    enqueue(&h.backend, &envelope(stream, "m-1", "where is my order")).await;
    // The other process received it first and its visibility ran out: what
    // this worker gets is a redelivery (a first delivery cannot be held
    // elsewhere, see worker/src/lease.rs).
    let_a_delivery_lapse(counting.inner.as_ref()).await;
    let (stop, task) = spawn_worker(&h.worker);
    // Received (and handed back) twice: the worker saw it and let it be.
    eventually(Duration::from_secs(40), "delivered twice", || async {
        counting.deliveries.lock().map(|d| d.len()).unwrap_or(0) >= 2
    })
    .await;
    assert!(
        message_ids(&h, stream).await.is_empty(),
        "worked on while another process held the conversation"
    );
    assert_eq!(
        h.fake.requests().len(),
        counting_before,
        "no downstream call"
    );
    assert!(!drained(&h.backend).await, "the message waits on the queue");
    fleet.release(stream, other).await.expect("release");
    wait_drained(&h.backend, Duration::from_secs(30)).await;
    stop_worker(stop, task).await;
    assert_eq!(message_ids(&h, stream).await, ["m-1"]);
    // The worker gave its own lease up when it finished.
    assert!(
        fleet
            .lease(stream, other, Duration::from_secs(1))
            .await
            .expect("lease")
    );
}
