//! The conformance suite: one set of cases, run against every backend.
//!
//! A backend's test file does
//! ```ignore
//! #[macro_use]
//! mod conformance;
//! async fn make(scope: conformance::Scope) -> ports::Backend { ... }
//! conformance_suite!(make);
//! ```
//! and gets one `#[tokio::test]` per case. A backend whose local server
//! cannot honour a case uses `conformance_cases!(make; case_a, case_b, ...)`
//! with the cases it can run, and says in its file why the rest differ.
//!
//! The constructor must return a backend isolated by `scope` (embedded: a
//! data dir under `scope.dir`; AWS: names prefixed with `scope.name`) with
//! `max_receive_count = MAX_RECEIVE_COUNT` and `secrets_ttl = SECRETS_TTL`,
//! and make sure the bucket `scope.bucket` exists. Calling it twice with the
//! same scope must give two handles on the same data (the secrets case needs
//! a second handle). Nothing here knows which backend it runs on.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ports::{Backend, OutgoingMessage, ReceivedMessage};

mod events;
mod limits;
mod misc;
mod queue;

pub use events::*;
pub use limits::*;
pub use misc::*;
pub use queue::*;

/// Receives after which a message moves to the DLQ, in every case.
pub const MAX_RECEIVE_COUNT: u32 = 2;
/// Secrets cache TTL the constructor must use (long: the case checks that a
/// cached value is served).
pub const SECRETS_TTL: Duration = Duration::from_secs(600);
/// Upper bound of one whole case.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(90);

/// What isolates one case from every other.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Unique, short (13 chars), `[a-z0-9]`, starts with a letter: usable
    /// in queue, table, secret and bucket names.
    pub name: String,
    /// A fresh directory, removed when the case ends.
    pub dir: Arc<tempfile::TempDir>,
    /// A bucket name the constructor makes sure exists.
    pub bucket: String,
}

impl Scope {
    pub fn new() -> Scope {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("t{}", &id[..12]);
        let dir = tempfile::Builder::new()
            .prefix("switchyard-conformance-")
            .tempdir()
            .expect("create temp dir");
        Scope {
            bucket: format!("{name}-raw"),
            name,
            dir: Arc::new(dir),
        }
    }
}

pub type MakeFn = fn(Scope) -> Pin<Box<dyn Future<Output = Backend> + Send>>;

/// One case's backend, and the way to open a second handle on it.
pub struct Harness {
    pub b: Backend,
    pub scope: Scope,
    make: MakeFn,
}

impl Harness {
    pub async fn new(make: MakeFn) -> Harness {
        let scope = Scope::new();
        let b = make(scope.clone()).await;
        Harness { b, scope, make }
    }

    /// A second, independent handle on the same data.
    pub async fn reopen(&self) -> Backend {
        (self.make)(self.scope.clone()).await
    }
}

/// Every case, by name. Keep in sync with the case functions.
macro_rules! conformance_suite {
    ($make:path) => {
        conformance_cases!($make;
            queue_fifo_order_within_group,
            queue_group_blocked_while_in_flight_other_groups_flow,
            queue_visibility_expiry_redelivers_with_count,
            queue_change_visibility_zero_redelivers_now,
            queue_stale_receipt_refused,
            queue_long_poll_wakes_on_send,
            queue_dedup_within_window,
            queue_dlq_after_max_receives,
            queue_dead_letter_with_reason,
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
    };
}

/// The chosen cases, one `#[tokio::test]` each.
macro_rules! conformance_cases {
    ($make:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let h = conformance::Harness::new(|s| Box::pin($make(s))).await;
                tokio::time::timeout(conformance::CASE_TIMEOUT, conformance::$case(&h))
                    .await
                    .expect(concat!(stringify!($case), " timed out"));
            }
        )+
    };
}

// ---- helpers shared by the cases ----

/// A message with one attribute.
pub fn msg(group: &str, dedup: &str, body: &str) -> OutgoingMessage {
    let mut attributes = BTreeMap::new();
    attributes.insert("traceparent".to_owned(), format!("tp-{dedup}"));
    OutgoingMessage {
        group_id: group.to_owned(),
        dedup_id: dedup.to_owned(),
        body: body.to_owned(),
        attributes,
    }
}

/// Seconds, as SQS counts visibility.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Receive (bounded) until `n` messages arrived or `within` passed.
pub async fn receive_n(
    b: &Backend,
    n: usize,
    max: u32,
    visibility: Duration,
    within: Duration,
) -> Vec<ReceivedMessage> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        let wait = (deadline - now).min(secs(2));
        let batch = tokio::time::timeout(wait + secs(5), b.queue.receive(max, visibility, wait))
            .await
            .expect("receive exceeded its own wait")
            .expect("receive");
        got.extend(batch);
    }
    got
}

/// A receive that must come back empty after waiting `wait`.
pub async fn receive_none(b: &Backend, visibility: Duration, wait: Duration) {
    let got = tokio::time::timeout(wait + secs(5), b.queue.receive(10, visibility, wait))
        .await
        .expect("receive exceeded its own wait")
        .expect("receive");
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert!(got.is_empty(), "expected nothing, received {bodies:?}");
}

pub fn bodies(ms: &[ReceivedMessage]) -> Vec<String> {
    ms.iter().map(|m| m.body.clone()).collect()
}
