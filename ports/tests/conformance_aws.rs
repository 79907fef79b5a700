//! The conformance suite against the AWS backend, on real AWS-protocol
//! servers on loopback: moto (SQS, Secrets Manager, S3) and DynamoDB Local.
//! Nothing is mocked in-process.
//!
//! Every case that needs the servers is `#[ignore]`d: a plain `cargo test`
//! lists it as ignored. Run them with `scripts/test` (which starts and
//! stops the servers itself), or `scripts/local-aws/start && .
//! .local-aws/env && cargo test --workspace --all-targets --test
//! conformance_aws -- --include-ignored`. Run without the servers, such a
//! case fails (`SWITCHYARD_AWS_TESTS is not set`).
//!
//! Each case provisions its own prefix (`t<12 hex>`), so cases run in
//! parallel. Where a local server's fidelity gap forces a case to differ
//! (`docs/aws.md`), the case below says so; `suite_is_fully_covered` fails
//! if the shared suite grows a case this file neither runs nor explains.
#[macro_use]
#[allow(unused_macros)]
mod conformance;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ports::{AwsSettings, Backend, CreateOutcome, NewEvent, PortError};

fn settings(prefix: &str) -> AwsSettings {
    let mut s = AwsSettings::new(prefix);
    s.max_receive_count = conformance::MAX_RECEIVE_COUNT;
    s.secrets_ttl = conformance::SECRETS_TTL;
    s
}

/// Provision the scope's prefix and bucket, then open the backend.
async fn make(scope: conformance::Scope) -> Backend {
    let mut s = settings(&scope.name);
    s.raw_mail_buckets = vec![scope.bucket.clone()];
    ports::aws::provision(&s).await.expect("provision");
    ports::aws::ensure_bucket(&scope.bucket)
        .await
        .expect("create bucket");
    ports::aws::open(&s).await.expect("open aws backend")
}

/// Like the suite's `conformance_cases!`, each case ignored unless asked
/// for, and failing when asked for without the local servers.
macro_rules! aws_cases {
    ($($case:ident),+ $(,)?) => {
        /// The shared cases this file runs unchanged.
        const RUN_UNCHANGED: &[&str] = &[$(stringify!($case)),+];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
            async fn $case() {
                ports::aws::require_local_servers();
                let h = conformance::Harness::new(|s| Box::pin(make(s))).await;
                tokio::time::timeout(conformance::CASE_TIMEOUT, conformance::$case(&h))
                    .await
                    .expect(concat!(stringify!($case), " timed out"));
            }
        )+
    };
}

aws_cases!(
    queue_fifo_order_within_group,
    queue_group_blocked_while_in_flight_other_groups_flow,
    // moto fidelity: a *batch* of one group whose visibility expires comes
    // back out of order in moto; these cases receive one message at a time,
    // which moto handles like SQS.
    queue_visibility_expiry_redelivers_with_count,
    queue_change_visibility_zero_redelivers_now,
    queue_long_poll_wakes_on_send,
    queue_dedup_within_window,
    queue_dlq_after_max_receives,
    queue_dead_letter_with_reason,
    // Passes on AWS too: redrive re-sends under a fresh SQS dedup id and
    // carries the original one as the logical dedup id (see aws/queue.rs).
    queue_redrive_keeps_ids_and_order,
    queue_dlq_filters_select_what_a_redrive_moves,
    ledger_create_conflict_returns_existing,
    ledger_expired_in_progress_taken_over,
    ledger_release_only_by_owner,
    ledger_expired_record_counts_as_absent,
    intake_enqueues_exactly_once,
    intake_respects_and_takes_over_claims,
    events_append_conflict_on_stale_version,
    events_duplicate_event_id_rejected,
    events_projection_atomic_with_append,
    events_list_streams_paging,
    flags_round_trip_with_audit,
    flags_invalid_rejected,
    secrets_cache_and_refresh,
    blobs_put_get_missing,
    ledger_key_over_the_dynamodb_limit_is_invalid,
    queue_message_over_the_sqs_limit_is_invalid,
    intake_over_the_limits_is_invalid_and_claims_nothing,
    events_keys_over_the_dynamodb_limit_are_invalid,
);

/// Shared cases replaced here by a variant, and why.
const DIFFERS: &[(&str, &str)] = &[(
    "queue_stale_receipt_refused",
    "moto accepts every receipt a message ever had (DeleteMessage and \
     ChangeMessageVisibility with a stale receipt act on the message); SQS \
     FIFO refuses an expired receipt, which the adapter maps to NotFound. \
     Variant: aws_invalid_receipt_refused.",
)];

/// The shared suite's case list (parsed from its macro) is exactly what
/// this file runs plus what it explains in DIFFERS.
#[test]
fn suite_is_fully_covered() {
    let src = include_str!("conformance/mod.rs");
    let start = src
        .find("conformance_cases!($make;")
        .expect("suite macro present");
    let list = &src[start..];
    let list = &list[list.find(';').expect("list start") + 1..list.find(");").expect("list end")];
    let suite: BTreeSet<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let ours: BTreeSet<&str> = RUN_UNCHANGED
        .iter()
        .copied()
        .chain(DIFFERS.iter().map(|(c, _)| *c))
        .collect();
    assert_eq!(
        suite, ours,
        "cases run or explained here vs the shared suite"
    );
}

// ---- variants and AWS-only cases ----

async fn backend() -> (conformance::Scope, Backend) {
    let scope = conformance::Scope::new();
    let b = make(scope.clone()).await;
    (scope, b)
}

/// Variant of queue_stale_receipt_refused (see DIFFERS): a receipt SQS
/// rejects maps to NotFound, and the message is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn aws_invalid_receipt_refused() {
    ports::aws::require_local_servers();
    let (_scope, b) = backend().await;
    b.queue
        .send(conformance::msg("g", "d1", "m1"))
        .await
        .expect("send");
    for bogus in ["not-a-receipt", ""] {
        let deleted = b.queue.delete(bogus).await;
        assert!(
            matches!(
                deleted,
                Err(PortError::NotFound(_)) | Err(PortError::Invalid(_))
            ),
            "delete({bogus:?}) refused: {deleted:?}"
        );
    }
    assert!(matches!(
        b.queue.delete("not-a-receipt").await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        b.queue
            .change_visibility("not-a-receipt", Duration::ZERO)
            .await,
        Err(PortError::NotFound(_))
    ));
    let got = conformance::receive_n(&b, 1, 1, conformance::secs(30), conformance::secs(10)).await;
    assert_eq!(conformance::bodies(&got), ["m1"], "message untouched");
}

/// `init` creates everything once; a second run changes nothing; a changed
/// max_receive_count updates the redrive policy; open works after init and
/// names the missing resource before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn aws_provision_is_idempotent() {
    ports::aws::require_local_servers();
    let prefix = conformance::Scope::new().name;
    let s = settings(&prefix);
    match ports::aws::open(&s).await {
        Err(PortError::NotFound(m)) => assert!(m.contains("switchyard init"), "{m}"),
        other => panic!("open before init must fail with NotFound, got {other:?}"),
    }
    let first = ports::aws::provision(&s).await.expect("provision");
    let created: Vec<&String> = first
        .iter()
        .filter(|l| l.starts_with("created") || l.starts_with("enabled"))
        .collect();
    assert_eq!(created.len(), 8, "2 queues, 4 tables, 2 ttls: {first:#?}");
    for name in [
        format!("{prefix}-events.fifo"),
        format!("{prefix}-events-dlq.fifo"),
        format!("{prefix}-ledger"),
        format!("{prefix}-log"),
        format!("{prefix}-flags"),
        format!("{prefix}-fleet"),
    ] {
        assert!(
            first.iter().any(|l| l.contains(&name)),
            "{name} in {first:#?}"
        );
    }
    let second = ports::aws::provision(&s).await.expect("provision again");
    assert_eq!(second.len(), first.len());
    assert!(
        second.iter().all(|l| l.starts_with("exists")),
        "second run changes nothing: {second:#?}"
    );
    let mut changed = s.clone();
    changed.max_receive_count = 7;
    let third = ports::aws::provision(&changed)
        .await
        .expect("provision changed");
    let updated: Vec<&String> = third.iter().filter(|l| !l.starts_with("exists")).collect();
    assert_eq!(updated.len(), 1, "{third:#?}");
    assert!(updated[0].starts_with("updated sqs queue") && updated[0].contains('7'));
    let b = ports::aws::open(&changed).await.expect("open after init");
    b.ready().await.expect("ready");
    assert!(
        ports::aws::provision(&AwsSettings::new("bad prefix!"))
            .await
            .is_err()
    );
}

/// A secret kept outside `<prefix>/` (`secret_ids`, from the
/// `SWITCHYARD_AWS_SECRET_ID_<NAME>` variables): read and written there,
/// while the other secrets stay under the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn aws_secret_id_override_is_read_and_written_there() {
    ports::aws::require_local_servers();
    let prefix = conformance::Scope::new().name;
    let elsewhere = format!("elsewhere/{prefix}/richpanel-token");
    let mut over = settings(&prefix);
    over.secret_ids
        .insert("WEBHOOK_TOKEN".to_owned(), elsewhere.clone());
    ports::aws::provision(&over).await.expect("provision");
    let b = ports::aws::open(&over).await.expect("open");
    assert_eq!(
        b.secrets.location("webhook-token"),
        format!("Secrets Manager secret {elsewhere}")
    );
    assert_eq!(
        b.secrets.location("openai_api_key"),
        format!("Secrets Manager secret {prefix}/openai_api_key")
    );
    b.secrets
        .store("webhook-token", "tok-elsewhere")
        .await
        .expect("store");
    let plain = ports::aws::open(&settings(&prefix)).await.expect("open");
    assert_eq!(
        plain.secrets.refresh("webhook-token").await.expect("read"),
        None,
        "nothing was written under the prefix"
    );
    let again = ports::aws::open(&over).await.expect("open");
    assert_eq!(
        again
            .secrets
            .refresh("webhook-token")
            .await
            .expect("read")
            .as_deref(),
        Some("tok-elsewhere")
    );
}

/// The largest append (25 events: 51 transaction items) works, and reading
/// a stream larger than one 1 MB DynamoDB page returns every event in
/// order (Query paging).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn aws_large_appends_and_paged_reads() {
    ports::aws::require_local_servers();
    let (_scope, b) = backend().await;
    let filler = "x".repeat(25_000);
    let mut version = 0;
    for batch in 0..2 {
        let events: Vec<NewEvent> = (0..25)
            .map(|i| NewEvent {
                event_id: format!("e-{batch}-{i:02}"),
                kind: "MessageReceived".into(),
                body: format!(r#"{{"n":{i},"pad":"{filler}"}}"#),
            })
            .collect();
        version = b
            .events
            .append(
                "big",
                version,
                events,
                format!("{{\"v\":{}}}", version + 25),
            )
            .await
            .expect("append 25");
    }
    assert_eq!(version, 50);
    let all = b.events.read_stream("big", 0).await.expect("read");
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<u64>>(), "all pages, in order");
    assert_eq!(all[30].event_id, "e-1-05");
    let too_many: Vec<NewEvent> = (0..26)
        .map(|i| NewEvent {
            event_id: format!("x{i}"),
            kind: "K".into(),
            body: "{}".into(),
        })
        .collect();
    assert!(matches!(
        b.events.append("big", 50, too_many, "{}".into()).await,
        Err(PortError::Invalid(_))
    ));
}

/// Racing writers: of 6 appends at the same version exactly one wins and
/// the others get a typed, retryable answer; of 6 ledger creates of one key
/// exactly one owns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn aws_concurrent_writers_one_winner() {
    ports::aws::require_local_servers();
    let (_scope, b) = backend().await;
    let b = Arc::new(b);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let ev = NewEvent {
                event_id: format!("race-{i}"),
                kind: "K".into(),
                body: "{}".into(),
            };
            b.events.append("race", 0, vec![ev], format!("{i}")).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("bounded")
            .expect("task")
        {
            Ok(v) => {
                assert_eq!(v, 1);
                wins += 1;
            }
            // DynamoDB answers a racing transaction either with a failed
            // condition or with TransactionConflict (retry later).
            Err(PortError::SequenceConflict { .. }) | Err(PortError::Unavailable(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one append at version 0 wins");
    assert_eq!(
        b.events.read_stream("race", 0).await.expect("read").len(),
        1
    );

    let mut tasks = Vec::new();
    for i in 0..6 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.ledger
                .try_create(
                    "evt:race",
                    "h",
                    &format!("owner-{i}"),
                    Duration::from_secs(30),
                    Duration::from_secs(600),
                )
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("bounded")
            .expect("task")
            .expect("try_create")
        {
            CreateOutcome::Created(_) => created += 1,
            CreateOutcome::Exists(_) => {}
            CreateOutcome::TakenOver(r) => panic!("nothing had expired: {r:?}"),
        }
    }
    assert_eq!(created, 1, "exactly one creator owns the key");
}

/// deploy/template.yaml declares what `provision` creates: same names, keys,
/// TTL attribute, index and queue settings (runs without the servers).
#[test]
fn template_matches_provision() {
    let template = include_str!("../../deploy/template.yaml");
    let names = ports::aws::Names::new("PREFIX").expect("names");
    for name in [
        &names.queue,
        &names.dlq,
        &names.ledger_table,
        &names.log_table,
        &names.flags_table,
        &names.fleet_table,
    ] {
        let templated = format!("!Sub \"{}\"", name.replace("PREFIX", "${Prefix}"));
        assert!(template.contains(&templated), "template lacks {templated}");
    }
    use ports::aws::provision::{
        DLQ_RETENTION_SECS, FIFO_DEDUPLICATION_SCOPE, FIFO_THROUGHPUT_LIMIT, QUEUE_RETENTION_SECS,
        QUEUE_VISIBILITY_SECS, STREAMS_INDEX, TTL_ATTRIBUTE,
    };
    for needle in [
        format!("VisibilityTimeout: {QUEUE_VISIBILITY_SECS}"),
        format!("MessageRetentionPeriod: {QUEUE_RETENTION_SECS}"),
        format!("MessageRetentionPeriod: {DLQ_RETENTION_SECS}"),
        format!("AttributeName: {TTL_ATTRIBUTE}\n        Enabled: true"),
        format!("IndexName: {STREAMS_INDEX}"),
        "ContentBasedDeduplication: false".to_owned(),
        "maxReceiveCount: !Ref MaxReceiveCount".to_owned(),
        "{ AttributeName: sk, AttributeType: N }".to_owned(),
        "{ AttributeName: stream, AttributeType: S }".to_owned(),
        "ProjectionType: KEYS_ONLY".to_owned(),
    ] {
        assert!(template.contains(&needle), "template lacks {needle:?}");
    }
    assert_eq!(template.matches("BillingMode: PAY_PER_REQUEST").count(), 4);
    assert_eq!(
        template
            .matches(&format!(
                "AttributeName: {TTL_ATTRIBUTE}\n        Enabled: true"
            ))
            .count(),
        2,
        "TTL on the ledger and the fleet table"
    );
    // Both queues, high throughput as `provision` creates them.
    for needle in [
        format!("DeduplicationScope: {FIFO_DEDUPLICATION_SCOPE}"),
        format!("FifoThroughputLimit: {FIFO_THROUGHPUT_LIMIT}"),
    ] {
        assert_eq!(
            template.matches(&needle).count(),
            2,
            "both queues: {needle}"
        );
    }
    assert_eq!(
        ports::AwsSettings::new("x").max_receive_count.to_string(),
        "20",
        "template default MaxReceiveCount is 20"
    );
    assert!(template.contains("Default: 20"));
}

/// A fidelity gap of the local SQS server, pinned so its fix is noticed.
/// SQS FIFO documents that messages of a group are returned in order, and
/// that while a message of a group is in flight no later message of the
/// group is returned. When a consumer dies holding several messages of one
/// group and their visibility runs out together, moto 5.2 hands out the
/// *newest* of them first: it drops each expired message from its
/// in-flight set as it walks the queue, so the group looks busy until it
/// reaches the last one. The worker does not rely on either behaviour: it
/// releases such a redelivered batch once and receives it again
/// (`worker/src/consumer.rs`, tested by
/// `worker/tests/pipeline.rs::a_dead_consumers_batch_is_processed_in_order`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn local_sqs_gap_redelivers_the_newest_of_an_expired_group_first() {
    ports::aws::require_local_servers();
    let (_scope, b) = backend().await;
    for (dedup, body) in [("d1", "m1"), ("d2", "m2"), ("d3", "m3")] {
        b.queue
            .send(conformance::msg("g", dedup, body))
            .await
            .expect("send");
    }
    let held = b
        .queue
        .receive(10, Duration::from_secs(2), conformance::secs(5))
        .await
        .expect("receive");
    let held = conformance::bodies(&held);
    // moto hands a group out in one batch (under load sometimes not all
    // of it): m1..mk, k >= 2.
    assert!(
        held.len() >= 2 && held.iter().zip(["m1", "m2", "m3"]).all(|(a, b)| a == b),
        "one batch, in order: {held:?}"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let again = b
        .queue
        .receive(10, Duration::from_secs(30), conformance::secs(5))
        .await
        .expect("receive");
    // Real SQS: `m1` first (the documented order). moto: the newest of the
    // held ones first (then any the dead consumer did not hold).
    assert_eq!(
        conformance::bodies(&again).first(),
        held.last(),
        "moto's FIFO redelivery changed: if it is now m1 first, the gap is fixed"
    );
    // Released, the group comes back oldest first (whatever part of it
    // moto hands out in one batch).
    for m in &again {
        b.queue
            .change_visibility(&m.receipt, Duration::ZERO)
            .await
            .expect("release");
    }
    let settled = b
        .queue
        .receive(10, Duration::from_secs(30), conformance::secs(5))
        .await
        .expect("receive");
    let settled = conformance::bodies(&settled);
    assert!(
        !settled.is_empty() && settled.iter().zip(["m1", "m2", "m3"]).all(|(a, b)| a == b),
        "released, the group comes back oldest first: {settled:?}"
    );
}

/// SQS FIFO documents that while a message of a group is in flight no
/// other message of the group is returned, to any consumer — also not to a
/// long poll that was already waiting when the group's first message was
/// taken. Stock moto 5.2.5 breaks this (it takes the set of busy groups
/// once, when a receive starts), so two consumers would hold one
/// conversation at once; `scripts/local-aws/patch-moto.py` fixes that in
/// the local server, and this fails on a server that has the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn a_waiting_long_poll_does_not_hand_out_a_busy_group() {
    ports::aws::require_local_servers();
    let (_scope, b) = backend().await;
    let b = std::sync::Arc::new(b);
    let poll = |b: std::sync::Arc<Backend>| {
        tokio::spawn(async move {
            b.queue
                .receive(1, Duration::from_secs(30), conformance::secs(4))
                .await
                .expect("receive")
        })
    };
    // Two consumers long-polling an empty queue.
    let (first, second) = (poll(b.clone()), poll(b.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    for (dedup, body) in [("d1", "m1"), ("d2", "m2")] {
        b.queue
            .send(conformance::msg("g", dedup, body))
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut got: Vec<String> = conformance::bodies(&first.await.expect("join"));
    got.extend(conformance::bodies(&second.await.expect("join")));
    got.sort();
    // m2 waits until m1 is deleted or its visibility ends.
    assert_eq!(
        got,
        ["m1"],
        "a waiting long poll handed out a busy group's next message: is scripts/local-aws/patch-moto.py applied?"
    );
}

/// Three processes' fleets on one table.
async fn three_fleets() -> (conformance::Scope, Vec<Arc<dyn ports::Fleet>>) {
    let scope = conformance::Scope::new();
    let mut fleets = Vec::new();
    for _ in 0..3 {
        let b = make(scope.clone()).await;
        fleets.push(b.fleet.expect("the aws backend has a fleet"));
    }
    (scope, fleets)
}

/// A conversation lease has one holder at a time across processes: of 30
/// concurrent takers one wins; the holder renews and releases; a lapsed
/// lease goes to the next taker; a release by a non-holder changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn fleet_lease_has_one_holder_at_a_time() {
    ports::aws::require_local_servers();
    let (_scope, f) = three_fleets().await;
    let hold = Duration::from_secs(30);
    let tries = (0..30).map(|i| {
        let fleet = f[i % 3].clone();
        tokio::spawn(async move { fleet.lease("conv-1", &format!("owner-{i}"), hold).await })
    });
    let won: Vec<usize> = futures::future::join_all(tries)
        .await
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.expect("join").expect("lease").then_some(i))
        .collect();
    assert_eq!(
        won.len(),
        1,
        "one of 30 concurrent takers holds it: {won:?}"
    );
    let holder = format!("owner-{}", won[0]);
    assert!(
        f[0].lease("conv-1", &holder, hold).await.expect("renew"),
        "renewed"
    );
    assert!(!f[1].lease("conv-1", "intruder", hold).await.expect("lease"));
    f[2].release("conv-1", "intruder").await.expect("release");
    assert!(
        !f[1].lease("conv-1", "intruder", hold).await.expect("lease"),
        "still held"
    );
    f[2].release("conv-1", &holder).await.expect("release");
    assert!(
        f[1].lease("conv-1", "next", Duration::from_millis(300))
            .await
            .expect("lease")
    );
    assert!(!f[0].lease("conv-1", "after", hold).await.expect("lease"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        f[0].lease("conv-1", "after", hold).await.expect("lease"),
        "lapsed"
    );
    assert!(
        f[2].lease("conv-2", "next", hold).await.expect("lease"),
        "per key"
    );
}

/// One bucket for three processes taking greedily: no window of the
/// period holds more than the quota (burst + period / interval), the
/// fleet together gets at least 90 % of the rate, and a pause one process
/// sets refuses every process until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn fleet_bucket_holds_the_quota_across_processes() {
    ports::aws::require_local_servers();
    let (_scope, f) = three_fleets().await;
    let rate = ports::Rate {
        interval: Duration::from_millis(100),
        burst: 2,
    };
    let run = Duration::from_secs(4);
    let started = tokio::time::Instant::now();
    let takers = f.iter().enumerate().map(|(i, fleet)| {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            let mut grants = Vec::new();
            while started.elapsed() < run {
                let g = fleet
                    .take("richpanel", 1 + i as u32, rate)
                    .await
                    .expect("take");
                let at = started.elapsed();
                grants.extend(std::iter::repeat_n(at, g.tokens as usize));
                if g.tokens == 0 {
                    tokio::time::sleep(g.retry_in.min(Duration::from_millis(50))).await;
                }
            }
            grants
        })
    });
    let mut grants: Vec<Duration> = futures::future::join_all(takers)
        .await
        .into_iter()
        .flat_map(|r| r.expect("join"))
        .collect();
    grants.sort();
    let window = Duration::from_secs(1);
    let most = grants
        .iter()
        .map(|t| {
            grants
                .iter()
                .filter(|u| **u >= *t && **u < *t + window)
                .count()
        })
        .max()
        .unwrap_or(0);
    // Taking is instantaneous here; a call's own latency can only spread them.
    assert!(
        most <= 12,
        "at most burst 2 + 1 s / 100 ms in any second: {most}"
    );
    let ideal = 2 + run.as_millis() / 100;
    assert!(
        grants.len() as u128 * 100 >= ideal * 90,
        "{} of {ideal} tokens: below 90 % of the rate",
        grants.len()
    );
    assert!(grants.len() as u128 <= ideal, "{} > {ideal}", grants.len());

    f[0].pause("richpanel", Duration::from_secs(2))
        .await
        .expect("pause");
    for fleet in &f {
        let g = fleet.take("richpanel", 1, rate).await.expect("take");
        assert_eq!(g.tokens, 0, "paused fleet-wide");
        assert!(g.retry_in > Duration::from_millis(1500), "{:?}", g.retry_in);
    }
    // A shorter pause does not shorten it.
    f[1].pause("richpanel", Duration::from_millis(100))
        .await
        .expect("pause");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        f[2].take("richpanel", 1, rate).await.expect("take").tokens,
        0
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        f[2].take("richpanel", 1, rate).await.expect("take").tokens,
        1
    );
}

/// Concurrent deletes go out batched (`DeleteMessageBatch`), each told its
/// own result: 30 messages deleted at once leave the queue empty, and a
/// receipt SQS refuses among them fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn concurrent_deletes_are_batched_and_answered_one_by_one() {
    ports::aws::require_local_servers();
    let (_scope, b) = backend().await;
    let b = Arc::new(b);
    for i in 0..30 {
        b.queue
            .send(conformance::msg(
                &format!("g{i}"),
                &format!("d{i}"),
                &format!("m{i}"),
            ))
            .await
            .expect("send");
    }
    let got = conformance::receive_n(&b, 30, 10, conformance::secs(60), conformance::secs(5)).await;
    assert_eq!(got.len(), 30);
    let mut receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
    receipts.insert(13, "not-a-receipt".to_owned());
    let deletes = receipts.into_iter().map(|r| {
        let b = b.clone();
        tokio::spawn(async move { (r.clone(), b.queue.delete(&r).await) })
    });
    let results = futures::future::join_all(deletes).await;
    for r in results {
        let (receipt, result) = r.expect("join");
        if receipt == "not-a-receipt" {
            assert!(
                matches!(
                    result,
                    Err(PortError::NotFound(_)) | Err(PortError::Invalid(_))
                ),
                "the bad receipt fails: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "{result:?}");
        }
    }
    let stats = b.queue.stats().await.expect("stats");
    assert_eq!((stats.visible, stats.in_flight), (0, 0), "all 30 deleted");
}
