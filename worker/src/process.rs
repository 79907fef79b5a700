//! One message, start to finish: decode → load stream → expand → for each
//! message: decide and append (atomically), then perform its actions.
//!
//! Resuming: everything is keyed by ids that are stable across deliveries
//! (envelope event id, action keys), so a redelivered message skips what
//! the log already holds and continues with what it does not.
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use ports::{PortError, ReceivedMessage};
use projections::{Action, ActionState, DecisionMode, EventBody, PlannedAction};
use tracing::{debug, info, warn};

use crate::act::{ActOutcome, perform};
use crate::decide::{MessageFacts, ModelClassification, decide};
use crate::expand::{Expanded, Incoming, expand};
use crate::stream::Stream;
use crate::{Worker, WorkerError};

/// What to do with the queue message afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Fully processed: delete it.
    Done,
    /// Try again later (through visibility), e.g. a downstream is rate
    /// limited or a store is unreachable. `None` = the backoff schedule.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Can never succeed: dead-letter it now with this reason.
    Poison(String),
}

/// Fault injection for tests (crash mid-way, drop messages). All off by
/// default; production never sets them.
#[derive(Debug, Default)]
pub struct Faults {
    /// Once: fail the processing right after a downstream write succeeded
    /// and before its outcome is recorded (a crash mid-call).
    pub crash_after_write: AtomicBool,
    /// Once: the same, but only after a customer-facing write (a reply).
    pub crash_after_reply: AtomicBool,
    /// Acknowledge (delete) every Nth message without processing it — a
    /// deliberately broken worker for the invariant checker's own test.
    pub drop_every: AtomicU64,
    /// Once: panic while processing the next message.
    pub panic_next: AtomicBool,
    pub(crate) seen: AtomicU64,
}

impl Faults {
    /// Whether to crash now (each switch fires once).
    fn take_crash(&self, customer_facing: bool) -> bool {
        self.crash_after_write.swap(false, Ordering::Relaxed)
            || (customer_facing && self.crash_after_reply.swap(false, Ordering::Relaxed))
    }
}

impl Worker {
    /// Process one received message. Never panics on its content.
    #[tracing::instrument(skip_all, fields(event_id, conversation_id, receive_count = msg.receive_count))]
    pub async fn process(&self, msg: &ReceivedMessage) -> Disposition {
        let drop_every = self.faults.drop_every.load(Ordering::Relaxed);
        if drop_every > 0
            && (self.faults.seen.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(drop_every)
        {
            return Disposition::Done;
        }
        if self.faults.panic_next.swap(false, Ordering::Relaxed) {
            panic!("injected panic while processing");
        }
        let env = match envelope::decode(msg.body.as_bytes()) {
            Ok(env) => env,
            Err(e) => return Disposition::Poison(format!("undecodable envelope: {e}")),
        };
        let span = tracing::Span::current();
        // Ids may embed addresses (email Message-IDs, ticket ids).
        if !span.is_disabled() {
            span.record(
                "event_id",
                envelope::redact::log_id(env.event_id.as_str()).as_str(),
            );
            span.record(
                "conversation_id",
                envelope::redact::log_id(env.conversation_id.as_str()).as_str(),
            );
        }
        match self.process_envelope(&env, msg).await {
            Ok(d) => d,
            Err(WorkerError::Corrupt { stream, reason }) => {
                Disposition::Poison(format!("stream {stream} is corrupt: {reason}"))
            }
            // The store refuses what this message makes (too large, an
            // invalid id): no retry can change that.
            Err(WorkerError::Port(PortError::Invalid(reason))) => {
                Disposition::Poison(format!("cannot be stored: {reason}"))
            }
            Err(e) => Disposition::Retry {
                after: None,
                reason: e.to_string(),
            },
        }
    }

    async fn process_envelope(
        &self,
        env: &envelope::Envelope,
        msg: &ReceivedMessage,
    ) -> Result<Disposition, WorkerError> {
        let trace = msg.attributes.get("traceparent").cloned();
        let events = self.backend.events.as_ref();
        let mut stream = Stream::load(
            events,
            env.conversation_id.as_str(),
            env.event_id.as_str(),
            trace,
        )
        .await?;
        let incoming = match expand(self, env, &stream.state).await {
            Expanded::Messages { update, messages } => {
                if let Some(update) = update {
                    stream.stage(vec![(Some(env.event_id.to_string()), update)]);
                    stream
                        .flush_or_resume(events, env.event_id.as_str())
                        .await?;
                }
                messages
            }
            Expanded::Retry { after, reason } => {
                return Ok(Disposition::Retry { after, reason });
            }
            Expanded::Poison(reason) => return Ok(Disposition::Poison(reason)),
        };
        for m in incoming {
            if let Some(d) = self.handle(&mut stream, env, &m).await? {
                return Ok(d);
            }
        }
        Ok(Disposition::Done)
    }

    /// Record, decide and act on one incoming message. `Some` = stop here.
    async fn handle(
        &self,
        stream: &mut Stream,
        env: &envelope::Envelope,
        m: &Incoming,
    ) -> Result<Option<Disposition>, WorkerError> {
        let events = self.backend.events.as_ref();
        let mut requested_now: HashSet<String> = HashSet::new();
        // A message already folded into the projection is resumed, not
        // re-decided. One that is not may still be in the log under its
        // event id (no message id to look up): the append below then fails
        // with `AlreadyAppended` and we resume from the reloaded stream —
        // no extra read for every new message (such a redelivery pays for
        // one decision, possibly a classifier call, before it finds out).
        let seen = m
            .message_id
            .as_deref()
            .is_some_and(|id| stream.state.has_message(id));
        if seen {
            debug!("message already in the log: resuming its actions");
        } else {
            let decision = self.decide(stream, m).await;
            let flags = self.downstreams.flags().await;
            let mode =
                if flags.shadow || self.downstreams.shadowed(downstream::Downstream::Richpanel) {
                    DecisionMode::Shadow
                } else {
                    DecisionMode::Live
                };
            let mut bodies = vec![
                (Some(m.event_id.clone()), m.received_body(env)),
                (
                    None,
                    EventBody::DecisionMade {
                        intents: decision.intents.clone(),
                        intent: decision.intent.clone(),
                        route: decision.route.clone(),
                        confidence: decision.confidence,
                        template: decision.template.clone(),
                        mode,
                        decided_by: decision.decided_by.to_owned(),
                        tier0: decision.tier0,
                        note: decision.note.clone(),
                        actions: decision
                            .actions
                            .iter()
                            .map(|(key, action)| PlannedAction {
                                key: key.clone(),
                                action: action.clone(),
                            })
                            .collect(),
                    },
                ),
            ];
            if let Some(reason) = &decision.handoff {
                bodies.push((
                    None,
                    EventBody::HandedToHuman {
                        reason: reason.clone(),
                    },
                ));
            }
            // The first action's request shares the decision's append.
            stream.stage(bodies);
            if let Some((key, pending)) = next_pending(stream)
                && pending.state == ActionState::Planned
            {
                let request = EventBody::ActionRequested {
                    key: key.clone(),
                    action: pending.action,
                };
                stream.stage(vec![(None, request)]);
                requested_now.insert(key);
            }
            if stream.flush_or_resume(events, &m.event_id).await? {
                // Recorded before (a redelivery, or another delivery first):
                // resume from the log.
                requested_now.clear();
            } else {
                info!(
                    intent = decision.intent.as_deref().unwrap_or("none"),
                    route = decision.route.as_deref().unwrap_or("none"),
                    actions = decision.actions.len(),
                    "message recorded and decided"
                );
            }
        }
        self.run_pending(stream, requested_now).await
    }

    async fn decide(&self, stream: &Stream, m: &Incoming) -> crate::decide::Decision {
        let model = if self.config.use_model
            && m.author == projections::Author::Customer
            && !m.text.is_empty()
        {
            self.classify(&m.text).await
        } else {
            None
        };
        let facts = MessageFacts {
            event_id: &m.event_id,
            conversation_id: &stream.name,
            text: &m.text,
            subject: m.subject.as_deref(),
            author: m.author,
            ticket_id: m.ticket_id.as_deref().or(stream.state.ticket_id.as_deref()),
            customer_name: m.customer_name.as_deref(),
            order_ref: m.order_ref.as_deref(),
        };
        decide(
            &self.rules,
            &facts,
            &stream.state,
            Utc::now(),
            model.as_ref(),
        )
    }

    /// The model's opinion, when one is configured and answers; any failure
    /// falls back to the rules (logged, not fatal).
    async fn classify(&self, text: &str) -> Option<ModelClassification> {
        if self.downstreams.shadowed(downstream::Downstream::Openai) {
            return None;
        }
        let labels: Vec<String> = self.rules.intents.iter().map(|i| i.name.clone()).collect();
        match self.downstreams.openai().classify(text, &labels).await {
            Ok(c) => Some(ModelClassification {
                intent: c.intent,
                confidence: c.confidence,
            }),
            Err(e) => {
                warn!(error = %envelope::redact::redacted(&e), "classifier failed: falling back to rules");
                None
            }
        }
    }

    /// Perform every pending action of this envelope: non-customer-facing
    /// first, then replies. Each is recorded as requested right before it is
    /// performed; one found already requested (an earlier delivery was
    /// interrupted mid-call) is performed again only if idempotent —
    /// otherwise its outcome is unknown and a human takes over.
    ///
    /// Events are staged and written together: an outcome shares its append
    /// with the next action's request, and every request is durable before
    /// its call is made. `requested_now`: keys whose request is already
    /// recorded by this delivery (not an interrupted earlier attempt).
    async fn run_pending(
        &self,
        stream: &mut Stream,
        mut requested_now: HashSet<String>,
    ) -> Result<Option<Disposition>, WorkerError> {
        let events = self.backend.events.as_ref();
        loop {
            let Some((key, pending)) = next_pending(stream) else {
                stream.flush(events).await?;
                return Ok(None);
            };
            let interrupted =
                pending.state == ActionState::Requested && !requested_now.contains(&key);
            if interrupted && !pending.action.idempotent() {
                warn!(key = %envelope::redact::log_id(&key), "non-idempotent action with unknown outcome: handing to a human");
                let reason = format!(
                    "{} outcome unknown after an interrupted attempt: check the ticket",
                    pending.action.name()
                );
                stream.stage(vec![
                    (None, EventBody::ActionOutcomeUnknown { key: key.clone() }),
                    (None, EventBody::HandedToHuman { reason }),
                ]);
                continue;
            }
            if !requested_now.remove(&key) {
                let request = EventBody::ActionRequested {
                    key: key.clone(),
                    action: pending.action.clone(),
                };
                stream.stage(vec![(None, request)]);
            }
            // Recorded as requested before it is performed.
            stream.flush(events).await?;
            let outcome = perform(self, stream, &key, &pending.action).await;
            if let ActOutcome::Completed { .. } = outcome
                && self.faults.take_crash(pending.action.customer_facing())
            {
                return Err(WorkerError::Port(PortError::Unavailable(
                    "injected crash after a downstream write".into(),
                )));
            }
            let (bodies, disposition) =
                outcome.into_events(&key, &pending.action, &self.rules, stream);
            for (_, body) in &bodies {
                if let EventBody::ActionRequested { key, .. } = body {
                    requested_now.insert(key.clone());
                }
            }
            stream.stage(bodies);
            if let Some(d) = disposition {
                stream.flush(events).await?;
                return Ok(Some(d));
            }
        }
    }
}

impl Worker {
    /// Before `msg` is dead-lettered: close every action its envelope left
    /// open, so none is silently missing — a reply requested without an
    /// outcome becomes `ActionOutcomeUnknown`, anything else not performed
    /// `ActionFailed` — and hand the conversation to a human with the
    /// reason. Best effort: a stream that cannot be read or written is
    /// left as it is (logged).
    pub(crate) async fn close_dead_lettered(&self, msg: &ReceivedMessage, reason: &str) {
        let Ok(env) = envelope::decode(msg.body.as_bytes()) else {
            return;
        };
        let causation = env.event_id.as_str();
        let closed = Stream::append_at_version(
            self.backend.events.as_ref(),
            env.conversation_id.as_str(),
            causation,
            msg.attributes.get("traceparent").cloned(),
            |state| {
                let mut bodies: Vec<EventBody> = state
                    .pending
                    .iter()
                    .filter(|(_, p)| p.causation_id == causation)
                    .map(|(key, p)| {
                        let key = key.clone();
                        if p.state == ActionState::Requested && !p.action.idempotent() {
                            EventBody::ActionOutcomeUnknown { key }
                        } else {
                            EventBody::ActionFailed {
                                key,
                                error: "not performed: the message was dead-lettered".into(),
                                retryable: false,
                            }
                        }
                    })
                    .collect();
                if bodies.is_empty() {
                    return None;
                }
                bodies.push(EventBody::HandedToHuman {
                    reason: format!("message dead-lettered: {reason}"),
                });
                Some(((), bodies))
            },
        )
        .await;
        if let Err(e) = closed {
            warn!(error = %envelope::redact::redacted(&e), "cannot close the actions of a dead-lettered message");
        }
    }
}

/// The next action of this envelope to perform: non-customer-facing first.
fn next_pending(stream: &Stream) -> Option<(String, projections::PendingAction)> {
    stream
        .state
        .pending
        .iter()
        .filter(|(_, p)| p.causation_id == stream.causation)
        .min_by_key(|(k, p)| (p.action.customer_facing(), (*k).clone()))
        .map(|(k, p)| (k.clone(), p.clone()))
}

/// The tag added once a reply went out (requested as a follow-up action).
pub(crate) fn replied_tags_action(rules: &crate::rules::Rules, action: &Action) -> Option<Action> {
    match action {
        Action::AutoReply { ticket_id, .. } => Some(Action::AddTags {
            ticket_id: ticket_id.clone(),
            tags: vec![rules.settings.replied_tag.clone()],
        }),
        Action::AddTags { .. } => None,
    }
}
