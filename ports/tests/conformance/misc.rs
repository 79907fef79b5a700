//! Ledger, flags, secrets and blob cases.
use std::time::Duration;

use ports::{CreateOutcome, LedgerState, PortError};

use super::{Harness, secs};

const IN_PROGRESS: Duration = Duration::from_secs(30);
const KEEP: Duration = Duration::from_secs(3600);

/// Create, then a conflicting create returns the existing record (with its
/// payload hash, for mismatch detection); only the owner marks it enqueued.
pub async fn ledger_create_conflict_returns_existing(h: &Harness) {
    let l = &h.b.ledger;
    let created = match l
        .try_create("evt:1", "hash-a", "owner-1", IN_PROGRESS, KEEP)
        .await
    {
        Ok(CreateOutcome::Created(r)) => r,
        other => panic!("expected Created, got {other:?}"),
    };
    assert_eq!(created.state, LedgerState::InProgress);
    assert_eq!(created.owner, "owner-1");
    match l
        .try_create("evt:1", "hash-b", "owner-2", IN_PROGRESS, KEEP)
        .await
    {
        Ok(CreateOutcome::Exists(r)) => {
            assert_eq!(r.owner, "owner-1");
            assert_eq!(r.state, LedgerState::InProgress);
            assert_eq!(r.payload_hash, "hash-a", "mismatch is detectable");
        }
        other => panic!("expected Exists, got {other:?}"),
    }
    assert!(matches!(
        l.mark_enqueued("evt:1", "owner-2").await,
        Err(PortError::ConditionFailed(_))
    ));
    l.mark_enqueued("evt:1", "owner-1")
        .await
        .expect("owner marks");
    let r = l.get("evt:1").await.expect("get").expect("exists");
    assert_eq!(r.state, LedgerState::Enqueued);
    assert_eq!(r.payload_hash, "hash-a");
    match l
        .try_create("evt:1", "hash-a", "owner-3", IN_PROGRESS, KEEP)
        .await
    {
        Ok(CreateOutcome::Exists(r)) => assert_eq!(r.state, LedgerState::Enqueued),
        other => panic!("expected Exists(Enqueued), got {other:?}"),
    }
    assert!(l.get("evt:none").await.expect("get").is_none());
}

/// An in-progress claim whose time ran out is taken over by the next
/// creator; the old owner lost it.
pub async fn ledger_expired_in_progress_taken_over(h: &Harness) {
    let l = &h.b.ledger;
    assert!(matches!(
        l.try_create("evt:2", "hash", "slow", secs(1), KEEP).await,
        Ok(CreateOutcome::Created(_))
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    match l
        .try_create("evt:2", "hash", "fast", IN_PROGRESS, KEEP)
        .await
    {
        Ok(CreateOutcome::TakenOver(r)) => {
            assert_eq!(r.owner, "fast");
            assert_eq!(r.state, LedgerState::InProgress);
        }
        other => panic!("expected TakenOver, got {other:?}"),
    }
    assert!(matches!(
        l.mark_enqueued("evt:2", "slow").await,
        Err(PortError::ConditionFailed(_))
    ));
    l.mark_enqueued("evt:2", "fast")
        .await
        .expect("new owner marks");
}

/// release by a non-owner is a no-op; by the owner it deletes the claim so
/// a retry starts afresh; an enqueued record is never released.
pub async fn ledger_release_only_by_owner(h: &Harness) {
    let l = &h.b.ledger;
    l.try_create("evt:3", "hash", "owner-1", IN_PROGRESS, KEEP)
        .await
        .expect("create");
    l.release("evt:3", "intruder").await.expect("no-op release");
    assert!(
        l.get("evt:3").await.expect("get").is_some(),
        "still claimed"
    );
    l.release("evt:3", "owner-1").await.expect("release");
    assert!(l.get("evt:3").await.expect("get").is_none(), "released");
    assert!(matches!(
        l.try_create("evt:3", "hash", "owner-2", IN_PROGRESS, KEEP)
            .await,
        Ok(CreateOutcome::Created(_))
    ));
    l.mark_enqueued("evt:3", "owner-2").await.expect("mark");
    l.release("evt:3", "owner-2")
        .await
        .expect("no-op on enqueued");
    let r = l.get("evt:3").await.expect("get").expect("kept");
    assert_eq!(r.state, LedgerState::Enqueued);
}

/// A record past `expires_at` counts as absent, whatever its state.
pub async fn ledger_expired_record_counts_as_absent(h: &Harness) {
    let l = &h.b.ledger;
    l.try_create("evt:4", "hash", "owner-1", secs(1), secs(1))
        .await
        .expect("create");
    l.mark_enqueued("evt:4", "owner-1").await.expect("mark");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        l.get("evt:4").await.expect("get").is_none(),
        "expired = absent"
    );
    assert!(matches!(
        l.try_create("evt:4", "hash-2", "owner-2", IN_PROGRESS, KEEP)
            .await,
        Ok(CreateOutcome::Created(_))
    ));
}

/// Flags round trip; each change has an audit entry (who, why, old → new),
/// newest first.
pub async fn flags_round_trip_with_audit(h: &Harness) {
    let f = &h.b.flags;
    let empty = f.get_all().await.expect("get");
    assert_eq!(empty.version, 0);
    assert!(empty.values.is_empty());
    let s1 = f
        .set("kill-switch", "auto_replies", "alice", "incident 12")
        .await
        .expect("set");
    assert_eq!(s1.version, 1);
    let s2 = f
        .set("kill-switch", "off", "bob", "resolved")
        .await
        .expect("set");
    assert_eq!(s2.version, 2);
    let s3 = f
        .set("pause.richpanel", "on", "carol", "vendor outage")
        .await
        .expect("set");
    assert_eq!(s3.version, 3);
    let all = f.get_all().await.expect("get");
    assert_eq!(all, s3);
    assert_eq!(
        all.values.get("kill-switch").map(String::as_str),
        Some("off")
    );
    assert_eq!(
        all.values.get("pause.richpanel").map(String::as_str),
        Some("on")
    );
    let typed = ports::Flags::from_set(&all);
    assert!(typed.paused("richpanel"));

    let hist = f.history(10).await.expect("history");
    type Row<'a> = (u64, &'a str, &'a str, &'a str, Option<&'a str>, &'a str);
    let rows: Vec<Row<'_>> = hist
        .iter()
        .map(|a| {
            (
                a.version,
                a.actor.as_str(),
                a.reason.as_str(),
                a.name.as_str(),
                a.old.as_deref(),
                a.new.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (3, "carol", "vendor outage", "pause.richpanel", None, "on"),
            (
                2,
                "bob",
                "resolved",
                "kill-switch",
                Some("auto_replies"),
                "off"
            ),
            (
                1,
                "alice",
                "incident 12",
                "kill-switch",
                None,
                "auto_replies"
            ),
        ]
    );
    assert!(hist[0].at >= hist[2].at);
    assert_eq!(f.history(1).await.expect("history").len(), 1);
}

/// An invalid flag name or value is refused and changes nothing.
pub async fn flags_invalid_rejected(h: &Harness) {
    let f = &h.b.flags;
    f.set("shadow", "on", "alice", "dry run")
        .await
        .expect("set");
    for (name, value) in [
        ("kill-switch", "maybe"),
        ("bogus", "on"),
        ("channel.", "on"),
    ] {
        assert!(
            matches!(
                f.set(name, value, "mallory", "x").await,
                Err(PortError::Invalid(_))
            ),
            "{name}={value} must be refused"
        );
    }
    let all = f.get_all().await.expect("get");
    assert_eq!(all.version, 1);
    assert_eq!(all.values.len(), 1);
    assert_eq!(f.history(10).await.expect("history").len(), 1);
}

/// A cached secret is served until refreshed; refresh sees a rotation made
/// through another handle.
pub async fn secrets_cache_and_refresh(h: &Harness) {
    let name = format!("{}-api-token", h.scope.name);
    let reader = &h.b.secrets;
    assert_eq!(reader.get(&name).await.expect("get"), None);
    let writer = h.reopen().await;
    writer.secrets.store(&name, "v1").await.expect("store");
    assert_eq!(
        reader.get(&name).await.expect("get"),
        None,
        "cached absence"
    );
    assert_eq!(
        reader.refresh(&name).await.expect("refresh").as_deref(),
        Some("v1")
    );
    writer.secrets.store(&name, "v2").await.expect("rotate");
    assert_eq!(
        reader.get(&name).await.expect("get").as_deref(),
        Some("v1"),
        "cached"
    );
    assert_eq!(
        reader.refresh(&name).await.expect("refresh").as_deref(),
        Some("v2")
    );
    assert_eq!(reader.get(&name).await.expect("get").as_deref(), Some("v2"));
    assert_eq!(
        writer.secrets.get(&name).await.expect("get").as_deref(),
        Some("v2")
    );
}

/// Blobs: missing is None; put then get returns the same bytes; a bucket
/// that is not the deployment's raw-mail bucket is refused, unread.
pub async fn blobs_put_get_missing(h: &Harness) {
    let bl = &h.b.blobs;
    let bucket = &h.scope.bucket;
    for foreign in ["someone-elses-bucket", "", "../secrets"] {
        assert!(
            matches!(
                bl.get(foreign, "inbound/x").await,
                Err(ports::PortError::Invalid(_))
            ),
            "bucket {foreign:?} must be refused"
        );
        assert!(matches!(
            bl.put(foreign, "inbound/x", b"x".to_vec()).await,
            Err(ports::PortError::Invalid(_))
        ));
    }
    assert_eq!(bl.get(bucket, "inbound/missing").await.expect("get"), None);
    let raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody \xff\x00".to_vec();
    bl.put(bucket, "inbound/2026/msg-1", raw.clone())
        .await
        .expect("put");
    assert_eq!(
        bl.get(bucket, "inbound/2026/msg-1").await.expect("get"),
        Some(raw)
    );
    bl.put(bucket, "inbound/2026/msg-1", b"v2".to_vec())
        .await
        .expect("overwrite");
    assert_eq!(
        bl.get(bucket, "inbound/2026/msg-1").await.expect("get"),
        Some(b"v2".to_vec())
    );
}

fn intake_request(key: &str, hash: &str, owner: &str, group: &str) -> ports::EnqueueOnce {
    ports::EnqueueOnce {
        key: key.into(),
        payload_hash: hash.into(),
        owner: owner.into(),
        in_progress_for: IN_PROGRESS,
        keep_for: KEEP,
        message: ports::OutgoingMessage {
            group_id: group.into(),
            dedup_id: format!("d-{key}").replace(':', "-"),
            body: format!("body of {key}"),
            attributes: Default::default(),
        },
    }
}

/// Claim + send + mark as one call: enqueued once; a second attempt finds
/// the enqueued record (with its hash) and sends nothing.
pub async fn intake_enqueues_exactly_once(h: &Harness) {
    let first =
        h.b.intake
            .enqueue_once(intake_request("evt:i1", "hash-a", "o1", "g-i1"))
            .await
            .expect("enqueue");
    assert_eq!(first, ports::EnqueueOutcome::Enqueued);
    let r =
        h.b.ledger
            .get("evt:i1")
            .await
            .expect("get")
            .expect("record");
    assert_eq!(r.state, LedgerState::Enqueued);
    match h
        .b
        .intake
        .enqueue_once(intake_request("evt:i1", "hash-b", "o2", "g-i1"))
        .await
        .expect("second attempt")
    {
        ports::EnqueueOutcome::Exists(r) => {
            assert_eq!(r.state, LedgerState::Enqueued);
            assert_eq!(r.payload_hash, "hash-a");
        }
        other => panic!("expected Exists, got {other:?}"),
    }
    let got =
        h.b.queue
            .receive(10, secs(30), secs(1))
            .await
            .expect("receive");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, "body of evt:i1");
    assert!(
        h.b.queue
            .receive(10, secs(30), Duration::from_millis(500))
            .await
            .expect("receive")
            .is_empty(),
        "a second copy was enqueued"
    );
}

/// A live in-progress claim by someone else is returned, not overridden;
/// once it expires, the intake takes it over and enqueues.
pub async fn intake_respects_and_takes_over_claims(h: &Harness) {
    assert!(matches!(
        h.b.ledger
            .try_create("evt:i2", "hash", "slow", secs(1), KEEP)
            .await,
        Ok(CreateOutcome::Created(_))
    ));
    match h
        .b
        .intake
        .enqueue_once(intake_request("evt:i2", "hash", "fast", "g-i2"))
        .await
        .expect("attempt")
    {
        ports::EnqueueOutcome::Exists(r) => {
            assert_eq!(
                (r.state, r.owner.as_str()),
                (LedgerState::InProgress, "slow")
            )
        }
        other => panic!("expected Exists(InProgress), got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        h.b.intake
            .enqueue_once(intake_request("evt:i2", "hash", "fast", "g-i2"))
            .await
            .expect("takeover"),
        ports::EnqueueOutcome::Enqueued
    );
    let r =
        h.b.ledger
            .get("evt:i2")
            .await
            .expect("get")
            .expect("record");
    assert_eq!((r.state, r.owner.as_str()), (LedgerState::Enqueued, "fast"));
}
