//! Queue cases: FIFO groups, visibility, dedup, DLQ, redrive.
use std::time::Duration;

use ports::{DlqFilter, PortError, Redrive};

use super::{Harness, MAX_RECEIVE_COUNT, bodies, msg, receive_n, receive_none, secs};

/// Five messages of one group come out in send order, each once, with
/// their ids and attributes intact.
pub async fn queue_fifo_order_within_group(h: &Harness) {
    let q = &h.b.queue;
    let sent: Vec<String> = (1..=5).map(|i| format!("g1-m{i}")).collect();
    for (i, body) in sent.iter().enumerate() {
        q.send(msg("g1", &format!("d{i}"), body))
            .await
            .expect("send");
    }
    let mut got = Vec::new();
    for _ in 0..20 {
        if got.len() == sent.len() {
            break;
        }
        let batch = receive_n(&h.b, 1, 10, secs(30), secs(5)).await;
        assert!(!batch.is_empty(), "queue went quiet after {got:?}");
        for m in batch {
            assert_eq!(m.group_id, "g1");
            assert_eq!(m.receive_count, 1, "first delivery counts 1");
            assert_eq!(
                m.attributes.get("traceparent").map(String::as_str),
                Some(format!("tp-{}", m.dedup_id).as_str()),
                "attributes travel with the message"
            );
            q.delete(&m.receipt).await.expect("delete");
            got.push(m.body);
        }
    }
    assert_eq!(got, sent, "strict order within a group");
    receive_none(&h.b, secs(30), secs(1)).await;
}

/// While a1 is in flight, a2 is not delivered, but b1 is; deleting a1
/// releases a2.
pub async fn queue_group_blocked_while_in_flight_other_groups_flow(h: &Harness) {
    let q = &h.b.queue;
    q.send(msg("a", "a1", "a1")).await.expect("send");
    q.send(msg("a", "a2", "a2")).await.expect("send");
    q.send(msg("b", "b1", "b1")).await.expect("send");
    // One at a time, so an adapter that batches a group (SQS may) cannot
    // hand out a2 together with a1.
    let mut first = receive_n(&h.b, 2, 1, secs(30), secs(10)).await;
    first.sort_by(|x, y| x.body.cmp(&y.body));
    assert_eq!(bodies(&first), ["a1", "b1"], "heads of both groups flow");
    receive_none(&h.b, secs(30), secs(1)).await;
    let a1 = &first[0];
    q.delete(&a1.receipt).await.expect("delete a1");
    let next = receive_n(&h.b, 1, 1, secs(30), secs(10)).await;
    assert_eq!(bodies(&next), ["a2"], "deleting a1 releases a2");
}

/// A message not deleted before its visibility ends comes back with
/// receive_count + 1 and a new receipt.
pub async fn queue_visibility_expiry_redelivers_with_count(h: &Harness) {
    let q = &h.b.queue;
    q.send(msg("g", "d1", "m1")).await.expect("send");
    let first = receive_n(&h.b, 1, 1, secs(1), secs(10)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    receive_none(&h.b, secs(1), Duration::ZERO).await;
    // The long poll must notice the visibility ending by itself.
    let again = receive_n(&h.b, 1, 1, secs(30), secs(10)).await;
    assert_eq!(again.len(), 1, "redelivered after visibility expired");
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].body, "m1");
    assert_eq!(again[0].receive_count, 2, "receive count +1");
    assert_ne!(
        again[0].receipt, first[0].receipt,
        "a new receipt per delivery"
    );
}

/// change_visibility(0) makes a received message visible at once.
pub async fn queue_change_visibility_zero_redelivers_now(h: &Harness) {
    let q = &h.b.queue;
    q.send(msg("g", "d1", "m1")).await.expect("send");
    let first = receive_n(&h.b, 1, 1, secs(60), secs(10)).await;
    assert_eq!(first.len(), 1);
    q.change_visibility(&first[0].receipt, Duration::ZERO)
        .await
        .expect("change visibility");
    let again = receive_n(&h.b, 1, 1, secs(60), secs(5)).await;
    assert_eq!(bodies(&again), ["m1"], "visible again without waiting 60 s");
    assert_eq!(again[0].receive_count, 2);
    // And extending it hides it.
    q.change_visibility(&again[0].receipt, secs(60))
        .await
        .expect("extend visibility");
    receive_none(&h.b, secs(60), secs(1)).await;
}

/// After redelivery the old receipt no longer names the message: delete
/// and change_visibility with it are refused and the message stays.
pub async fn queue_stale_receipt_refused(h: &Harness) {
    let q = &h.b.queue;
    q.send(msg("g", "d1", "m1")).await.expect("send");
    let first = receive_n(&h.b, 1, 1, secs(1), secs(10)).await;
    assert_eq!(first.len(), 1);
    let again = receive_n(&h.b, 1, 1, secs(30), secs(10)).await;
    assert_eq!(again.len(), 1, "redelivered");
    let stale = &first[0].receipt;
    assert!(
        matches!(q.delete(stale).await, Err(PortError::NotFound(_))),
        "delete with a stale receipt is refused"
    );
    assert!(
        matches!(
            q.change_visibility(stale, Duration::ZERO).await,
            Err(PortError::NotFound(_))
        ),
        "change_visibility with a stale receipt is refused"
    );
    for garbage in ["", "not-a-receipt", "1.", "99999.nonce"] {
        assert!(
            q.delete(garbage).await.is_err(),
            "a receipt no delivery minted ({garbage:?}) deletes nothing"
        );
    }
    // Still in flight under the fresh receipt: not visible, deletable.
    receive_none(&h.b, secs(30), Duration::ZERO).await;
    q.delete(&again[0].receipt)
        .await
        .expect("fresh receipt deletes");
    receive_none(&h.b, secs(30), secs(2)).await;
}

/// A receive waiting on an empty queue returns as soon as a message is sent.
pub async fn queue_long_poll_wakes_on_send(h: &Harness) {
    let b = h.b.clone();
    let waiter = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let got = b.queue.receive(10, secs(30), secs(10)).await;
        (got, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.b.queue.send(msg("g", "d1", "late")).await.expect("send");
    let (got, took) = tokio::time::timeout(secs(15), waiter)
        .await
        .expect("long poll bounded")
        .expect("task");
    let got = got.expect("receive");
    assert_eq!(bodies(&got), ["late"]);
    assert!(
        took < secs(8),
        "woke on the send, not at the end of the wait ({took:?})"
    );
}

/// A second send with the same dedup id inside the window (first copy still
/// queued) is accepted and dropped. (Not tested: a duplicate after the first
/// was deleted — moto delivers it again, see `docs/aws.md`.)
pub async fn queue_dedup_within_window(h: &Harness) {
    let q = &h.b.queue;
    q.send(msg("g", "same", "first")).await.expect("send");
    q.send(msg("g", "same", "second"))
        .await
        .expect("duplicate send is Ok");
    q.send(msg("g", "other", "third")).await.expect("send");
    let mut got = Vec::new();
    for _ in 0..5 {
        let batch = receive_n(&h.b, 1, 10, secs(30), secs(3)).await;
        for m in batch {
            q.delete(&m.receipt).await.expect("delete");
            got.push(m.body);
        }
        if got.len() >= 2 {
            break;
        }
    }
    receive_none(&h.b, secs(30), secs(1)).await;
    assert_eq!(got, ["first", "third"], "the duplicate was dropped");
}

/// A message received MAX_RECEIVE_COUNT times and never deleted moves to
/// the DLQ on the next receive; the next message of its group then flows.
pub async fn queue_dlq_after_max_receives(h: &Harness) {
    let q = &h.b.queue;
    q.send(msg("g", "d1", "poison")).await.expect("send");
    q.send(msg("g", "d2", "next")).await.expect("send");
    for n in 1..=MAX_RECEIVE_COUNT {
        let got = receive_n(&h.b, 1, 1, secs(1), secs(10)).await;
        assert_eq!(bodies(&got), ["poison"], "delivery {n}");
        assert_eq!(got[0].receive_count, n);
    }
    let got = receive_n(&h.b, 1, 1, secs(30), secs(15)).await;
    assert_eq!(
        bodies(&got),
        ["next"],
        "poison moved aside, group unblocked"
    );
    let dlq = q
        .dlq_list(&DlqFilter::default(), 10)
        .await
        .expect("dlq list");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let dead = &dlq[0];
    assert_eq!(dead.body, "poison");
    assert_eq!(dead.group_id, "g");
    assert_eq!(dead.dedup_id, "d1");
    assert!(
        dead.reason.starts_with("exceeded max receive count"),
        "reason: {}",
        dead.reason
    );
    assert!(dead.receive_count >= MAX_RECEIVE_COUNT);
    assert_eq!(q.stats().await.expect("stats").dlq, 1);
}

/// dead_letter moves a received message to the DLQ at once with its
/// reason; the group flows on.
pub async fn queue_dead_letter_with_reason(h: &Harness) {
    let q = &h.b.queue;
    q.send(msg("g", "d1", "bad json")).await.expect("send");
    q.send(msg("g", "d2", "good")).await.expect("send");
    let got = receive_n(&h.b, 1, 1, secs(30), secs(10)).await;
    assert_eq!(bodies(&got), ["bad json"]);
    q.dead_letter(&got[0], "poison: body is not an envelope")
        .await
        .expect("dead letter");
    let next = receive_n(&h.b, 1, 1, secs(30), secs(10)).await;
    assert_eq!(bodies(&next), ["good"], "group unblocked at once");
    let dlq = q
        .dlq_list(&DlqFilter::default(), 10)
        .await
        .expect("dlq list");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].id, got[0].message_id, "DLQ id is the message id");
    assert_eq!(dlq[0].reason, "poison: body is not an envelope");
    assert_eq!(dlq[0].body, "bad json");
    assert_eq!(
        dlq[0].attributes.get("traceparent").map(String::as_str),
        Some("tp-d1"),
        "attributes kept"
    );
}

/// Redrive puts dead letters back keeping group and dedup ids and their
/// order (dedup does not swallow them); the group filter and One(id) work.
pub async fn queue_redrive_keeps_ids_and_order(h: &Harness) {
    let q = &h.b.queue;
    for (d, body) in [("g1", "g-one"), ("g2", "g-two"), ("g3", "g-three")] {
        q.send(msg("g", d, body)).await.expect("send");
    }
    q.send(msg("h", "h1", "h-one")).await.expect("send");
    // Dead-letter g-one, g-two and h-one; process g-three normally.
    let mut dead_ids = Vec::new();
    let mut done = Vec::new();
    for _ in 0..10 {
        if done.len() == 4 {
            break;
        }
        for m in receive_n(&h.b, 1, 10, secs(30), secs(5)).await {
            if m.body == "g-three" {
                q.delete(&m.receipt).await.expect("delete");
            } else {
                q.dead_letter(&m, "downstream rejected")
                    .await
                    .expect("dead letter");
                dead_ids.push((m.body.clone(), m.message_id.clone()));
            }
            done.push(m.body);
        }
    }
    assert_eq!(done.len(), 4, "{done:?}");
    let dlq = q
        .dlq_list(&DlqFilter::default(), 10)
        .await
        .expect("dlq list");
    let g_order: Vec<&str> = dlq
        .iter()
        .filter(|d| d.group_id == "g")
        .map(|d| d.body.as_str())
        .collect();
    assert_eq!(g_order, ["g-one", "g-two"], "DLQ keeps group order");

    let moved = q
        .dlq_redrive(Redrive::Matching(DlqFilter {
            group: Some("g".into()),
            ..DlqFilter::default()
        }))
        .await
        .expect("redrive group g");
    assert_eq!(moved, 2);
    let left = q
        .dlq_list(&DlqFilter::default(), 10)
        .await
        .expect("dlq list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].group_id, "h", "other groups stay in the DLQ");

    let mut back = Vec::new();
    for _ in 0..10 {
        if back.len() == 2 {
            break;
        }
        for m in receive_n(&h.b, 1, 1, secs(30), secs(5)).await {
            assert_eq!(m.group_id, "g");
            q.delete(&m.receipt).await.expect("delete");
            back.push((m.body, m.dedup_id));
        }
    }
    assert_eq!(
        back,
        [
            ("g-one".to_owned(), "g1".to_owned()),
            ("g-two".to_owned(), "g2".to_owned())
        ],
        "redriven in order with their dedup ids, despite the dedup window"
    );

    assert!(matches!(
        q.dlq_redrive(Redrive::One("no-such-id".into())).await,
        Err(PortError::NotFound(_))
    ));
    let h_id = left[0].id.clone();
    assert_eq!(
        q.dlq_redrive(Redrive::One(h_id))
            .await
            .expect("redrive one"),
        1
    );
    let again = receive_n(&h.b, 1, 1, secs(30), secs(10)).await;
    assert_eq!(bodies(&again), ["h-one"]);
    assert_eq!(
        again[0].receive_count, 1,
        "a redriven message starts afresh"
    );
    assert!(
        q.dlq_list(&DlqFilter::default(), 10)
            .await
            .expect("dlq list")
            .is_empty()
    );
}

/// The DLQ filters (reason as a regular expression, source, group, sent
/// time) select the same dead letters for a listing and for a redrive, and
/// a filtered redrive moves only those, in their group's order.
pub async fn queue_dlq_filters_select_what_a_redrive_moves(h: &Harness) {
    let q = &h.b.queue;
    let with_source = |group: &str, dedup: &str, source: &str| {
        let mut m = msg(group, dedup, dedup);
        m.attributes
            .insert(ports::ATTR_SOURCE.to_owned(), source.to_owned());
        m
    };
    // (group, dedup id = body, source, reason)
    let letters = [
        (
            "a",
            "a1",
            "richpanel",
            "downstream rejected: 422 from richpanel",
        ),
        ("a", "a2", "richpanel", "poison: body is not an envelope"),
        (
            "a",
            "a3",
            "richpanel",
            "downstream rejected: 400 from richpanel",
        ),
        ("b", "b1", "ses", "downstream rejected: 422 from richpanel"),
    ];
    for (group, dedup, source, _) in &letters[..2] {
        q.send(with_source(group, dedup, source))
            .await
            .expect("send");
    }
    // A second between the first two and the rest, as send times count
    // in milliseconds (SQS) and the filter compares them.
    tokio::time::sleep(secs(1)).await;
    let later = chrono::Utc::now();
    for (group, dedup, source, _) in &letters[2..] {
        q.send(with_source(group, dedup, source))
            .await
            .expect("send");
    }
    let reason_of = |body: &str| {
        letters
            .iter()
            .find(|l| l.1 == body)
            .map(|l| l.3)
            .expect("known body")
    };
    let mut dead = 0;
    for _ in 0..10 {
        if dead == letters.len() {
            break;
        }
        for m in receive_n(&h.b, 1, 10, secs(30), secs(5)).await {
            q.dead_letter(&m, reason_of(&m.body))
                .await
                .expect("dead letter");
            dead += 1;
        }
    }
    assert_eq!(dead, letters.len());
    let listed = |filter: DlqFilter| async move {
        let mut got: Vec<String> = q
            .dlq_list(&filter, 100)
            .await
            .expect("dlq list")
            .into_iter()
            .map(|d| d.body)
            .collect();
        got.sort();
        got
    };
    let rejected = || DlqFilter {
        reason: Some(regex::Regex::new("^downstream rejected: 4(00|22)").expect("regex")),
        ..DlqFilter::default()
    };
    assert_eq!(listed(rejected()).await, ["a1", "a3", "b1"], "by reason");
    assert_eq!(
        listed(DlqFilter {
            source: Some("ses".into()),
            ..DlqFilter::default()
        })
        .await,
        ["b1"],
        "by source"
    );
    assert_eq!(
        listed(DlqFilter {
            since: Some(later),
            ..DlqFilter::default()
        })
        .await,
        ["a3", "b1"],
        "since"
    );
    assert_eq!(
        listed(DlqFilter {
            until: Some(later),
            ..DlqFilter::default()
        })
        .await,
        ["a1", "a2"],
        "until"
    );
    let of_a_rejected = DlqFilter {
        group: Some("a".into()),
        ..rejected()
    };
    assert_eq!(
        listed(of_a_rejected.clone()).await,
        ["a1", "a3"],
        "group and reason"
    );

    let moved = q
        .dlq_redrive(Redrive::Matching(of_a_rejected))
        .await
        .expect("filtered redrive");
    assert_eq!(moved, 2, "moves exactly what the listing showed");
    assert_eq!(
        listed(DlqFilter::default()).await,
        ["a2", "b1"],
        "the rest stays in the DLQ"
    );
    let mut back = Vec::new();
    for _ in 0..10 {
        if back.len() == 2 {
            break;
        }
        for m in receive_n(&h.b, 1, 1, secs(30), secs(5)).await {
            q.delete(&m.receipt).await.expect("delete");
            back.push(m.body);
        }
    }
    assert_eq!(back, ["a1", "a3"], "redriven in group order");
}
