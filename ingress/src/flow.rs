//! The idempotency flow that runs before every ACK:
//! ledger `try_create` (in progress) → queue `send` → ledger `mark_enqueued`,
//! as one `Intake::enqueue_once` call (the embedded backend does all three
//! in one transaction; AWS makes the three calls).
//!
//! | ledger says | answer |
//! |---|---|
//! | created / expired claim taken over, send ok | 202 accepted |
//! | enqueued, same payload hash | 200 duplicate (nothing sent) |
//! | enqueued, other payload hash | 409 conflict — the only 409 |
//! | in progress (someone else mid-flight), any hash | poll up to `in_flight_wait`: enqueued → 200 duplicate or, with another hash, 409; released or claim expired → try again (taking the claim over); else 503 |
//! | send failed | release the claim → 503 + `Retry-After` |
//! | backend refuses the input (`PortError::Invalid`) | 400 `invalid_input` |
//! | backend unreachable | 503 + `Retry-After` |
//!
//! An in-progress claim decides nothing yet: its attempt may still fail and
//! store nothing, so a different payload under the same id is a conflict
//! only once that attempt ends enqueued. A claim whose time ran out was
//! never answered 2xx by a live attempt: whoever takes it over sends its
//! own payload, and that payload's hash is what later redeliveries are
//! compared with.
//!
//! `mark_enqueued` failing after a successful send still answers 202: the
//! message *is* durably enqueued; an unmarked claim expires and a later
//! retry resends with the same dedup id, which the queue drops. (A retry
//! with *another* payload that takes such a claim over is answered 202
//! too, though the queue keeps the first payload: the one case the ledger
//! cannot tell apart from a first attempt that crashed before sending.)
//!
//! Payload hashes match when equal, or when the stored one is the request's
//! [`envelope::Envelope::legacy_payload_hash`] (a record written before tags
//! and assignee left the hash).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::StatusCode;
use ports::{Backend, EnqueueOnce, EnqueueOutcome, LedgerState, OutgoingMessage, PortError};

use crate::error::Reject;
use crate::metrics as m;

/// Retry-After for backend trouble.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Rounds of `try_create` before giving up on a key that keeps changing.
const MAX_ROUNDS: usize = 4;

/// What the normalizer produced, in the terms the flow needs.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub event_id: String,
    pub payload_hash: String,
    pub group_id: String,
    pub dedup_id: String,
    /// The hash by the definition that still covered tags and assignee,
    /// when it differs from `payload_hash`.
    pub legacy_hash: Option<String>,
    /// The envelope JSON (the queue message body).
    pub body: String,
    /// `meta.source` of the envelope.
    pub source: &'static str,
    /// The conversation id as normalized (log it through `envelope::redact::log_id`).
    pub conversation_id: String,
}

/// What the flow still needs of the [`Prepared`] once its strings have
/// moved into the request.
#[derive(Clone, Copy)]
struct Kept<'a> {
    event_id: &'a str,
    payload_hash: &'a str,
    legacy_hash: Option<&'a str>,
}

impl Kept<'_> {
    /// Was a record with `hash` written for this payload?
    fn same_payload(&self, hash: &str) -> bool {
        hash == self.payload_hash || self.legacy_hash == Some(hash)
    }
}

/// A 2xx outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// Enqueued by this request.
    New,
    /// Already enqueued earlier (or by a concurrent request).
    Duplicate,
}

impl Accepted {
    pub(crate) fn status(self) -> (StatusCode, &'static str) {
        match self {
            Accepted::New => (StatusCode::ACCEPTED, "accepted"),
            Accepted::Duplicate => (StatusCode::OK, "duplicate"),
        }
    }
}

/// Settings of the flow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowSettings {
    pub in_progress: Duration,
    pub keep: Duration,
    pub in_flight_wait: Duration,
}

/// Run the flow for one prepared envelope (its strings move into the
/// queue message; only the event id is kept, for the answer and errors).
pub(crate) async fn enqueue_once(
    backend: &Backend,
    s: FlowSettings,
    route: &'static str,
    p: Prepared,
    traceparent: String,
) -> Result<Accepted, Reject> {
    let owner = uuid::Uuid::new_v4().to_string();
    let deadline = Instant::now() + s.in_flight_wait;
    let mut attributes = BTreeMap::new();
    attributes.insert("traceparent".to_owned(), traceparent);
    attributes.insert("event_id".to_owned(), p.event_id.clone());
    attributes.insert(ports::ATTR_SOURCE.to_owned(), p.source.to_owned());
    let request = EnqueueOnce {
        key: p.event_id,
        payload_hash: p.payload_hash,
        owner,
        in_progress_for: s.in_progress,
        keep_for: s.keep,
        message: OutgoingMessage {
            group_id: p.group_id,
            dedup_id: p.dedup_id,
            body: p.body,
            attributes,
        },
    };
    let legacy_hash = p.legacy_hash;
    let p = Kept {
        event_id: &request.key,
        payload_hash: &request.payload_hash,
        legacy_hash: legacy_hash.as_deref(),
    };
    for _ in 0..MAX_ROUNDS {
        let outcome = backend
            .intake
            .enqueue_once(request.clone())
            .await
            .map_err(|e| port_error(route, "backend", &e, p))?;
        match outcome {
            EnqueueOutcome::Enqueued => return Ok(Accepted::New),
            EnqueueOutcome::Exists(rec) => {
                if rec.state == LedgerState::Enqueued {
                    return enqueued_answer(route, p, &rec.payload_hash);
                }
                match wait_in_flight(backend, route, p, deadline).await? {
                    Some(a) => return Ok(a),
                    None => continue, // released or expired: try to claim it
                }
            }
        }
    }
    Err(in_flight_timeout(route, p))
}

/// The answer to a record already enqueued: duplicate or conflict.
fn enqueued_answer(route: &'static str, p: Kept<'_>, hash: &str) -> Result<Accepted, Reject> {
    if p.same_payload(hash) {
        Ok(Accepted::Duplicate)
    } else {
        Err(conflict(route, p))
    }
}

/// Poll the ledger while someone else holds the claim, whatever its hash.
/// `Some` = final answer; `None` = the claim went away (or expired), create
/// again.
async fn wait_in_flight(
    backend: &Backend,
    route: &'static str,
    p: Kept<'_>,
    deadline: Instant,
) -> Result<Option<Accepted>, Reject> {
    let mut pause = Duration::from_millis(5);
    loop {
        if Instant::now() >= deadline {
            return Err(in_flight_timeout(route, p));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
        let rec = backend
            .ledger
            .get(p.event_id)
            .await
            .map_err(|e| port_error(route, "ledger", &e, p))?;
        match rec {
            None => return Ok(None),
            Some(r) if r.state == LedgerState::Enqueued => {
                return enqueued_answer(route, p, &r.payload_hash).map(Some);
            }
            Some(r) if r.in_progress_until <= chrono::Utc::now() => {
                if !p.same_payload(&r.payload_hash) {
                    tracing::info!("taking over an expired claim of another payload");
                }
                return Ok(None);
            }
            Some(_) => {}
        }
    }
}

fn conflict(route: &'static str, p: Kept<'_>) -> Reject {
    m::outcome(m::CONFLICT, route);
    tracing::warn!("event id already accepted with a different payload");
    Reject::new(
        StatusCode::CONFLICT,
        "conflict",
        "this event_id was already accepted with a different payload",
    )
    .with_event_id(p.event_id)
}

fn in_flight_timeout(route: &'static str, p: Kept<'_>) -> Reject {
    m::unavailable(route, "in_flight");
    Reject::unavailable(
        "the same event is being accepted by another request; retry",
        Duration::from_secs(1),
    )
    .with_event_id(p.event_id)
}

/// A port error before the ack: 400 when the backend cannot store the input
/// as given (retrying cannot help), else 503.
fn port_error(route: &'static str, what: &'static str, e: &PortError, p: Kept<'_>) -> Reject {
    if let PortError::Invalid(detail) = e {
        // Port messages name sizes and limits, but an SDK's may quote more:
        // redacted before logging, and not returned.
        let detail = envelope::redact::redact(detail);
        tracing::warn!(error = %detail, port = what, "backend refused the input");
        return Reject::bad_request(
            "invalid_input",
            "the backend cannot store this event as given (an id or the message is over a \
             storage limit); retrying will not help",
        )
        .with_event_id(p.event_id);
    }
    unavailable(route, what, e, p)
}

fn unavailable(route: &'static str, what: &'static str, e: &PortError, p: Kept<'_>) -> Reject {
    m::unavailable(route, what);
    tracing::warn!(error = %envelope::redact::redacted(e), port = what, "backend failure before ack");
    Reject::unavailable(
        format!("{what} unavailable; nothing was accepted"),
        RETRY_AFTER,
    )
    .with_event_id(p.event_id)
}
