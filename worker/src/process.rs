//! One message, start to finish: decode → load its conversation → enrich →
//! for each message it stands for: decide and append (atomically), then
//! perform its actions, each outcome appended before the next request.
//! A message decided in shadow mode makes no downstream write (its calls
//! carry `CallContext::shadow`, which the safety stack shadows whatever
//! the flags say by then), so its request-before-call appends are not
//! needed: the message, its decision and every action's request and
//! outcome are one append.
//!
//! Resuming: everything is keyed by ids that are stable across deliveries
//! (envelope event id, action keys), so a redelivered message skips what
//! the log already holds and continues with what it does not.
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;

use chrono::Utc;
use conversation::{
    ActionState, ConversationLog, DecisionMode, EventBody, LogError, MessageFacts,
    ModelClassification, Next, PendingAction, decide, interrupted_events, next_pending,
    outcome_events,
};
use ports::{PortError, ReceivedMessage};
use tracing::{Instrument, debug, info, warn};

use crate::Worker;
use crate::disposition::Disposition;
use crate::enrich::{Incoming, enrich};

/// `Break(disposition)`: processing of the message stops here.
pub(crate) type Step = ControlFlow<Disposition>;

impl Worker {
    /// Process one received message. Never panics on its content.
    pub async fn process(&self, msg: &ReceivedMessage) -> Disposition {
        // A child of the message's trace context (the ingress's send), as
        // OpenTelemetry's messaging conventions have a consumer's process
        // span; made before it is entered, so the parent can still be set.
        let span = ports::otel::root_span(
            msg.attributes.get("traceparent").map(String::as_str),
            || {
                tracing::info_span!(
                    "process",
                    otel.name = "events process",
                    otel.kind = "consumer",
                    messaging.system = self.backend.messaging_system,
                    messaging.operation.type = "process",
                    messaging.message.id = %msg.message_id,
                    event_id = tracing::field::Empty,
                    conversation_id = tracing::field::Empty,
                    receive_count = msg.receive_count,
                )
            },
        );
        self.process_in_span(msg).instrument(span).await
    }

    async fn process_in_span(&self, msg: &ReceivedMessage) -> Disposition {
        if self.faults.drop_this_one() {
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
            Ok(ControlFlow::Continue(())) => Disposition::Done,
            Ok(ControlFlow::Break(d)) => d,
            Err(LogError::Corrupt { stream, reason }) => {
                Disposition::Poison(format!("stream {stream} is corrupt: {reason}"))
            }
            // The store refuses what this message makes (too large, an
            // invalid id): no retry can change that.
            Err(LogError::Port(PortError::Invalid(reason))) => {
                Disposition::Poison(format!("cannot be stored: {reason}"))
            }
            Err(e) => Disposition::Retry {
                after: None,
                reason: e.to_string(),
                paused: None,
            },
        }
    }

    async fn process_envelope(
        &self,
        env: &envelope::Envelope,
        msg: &ReceivedMessage,
    ) -> Result<Step, LogError> {
        let events = self.backend.events.as_ref();
        let mut log = ConversationLog::load(
            events,
            env.conversation_id.as_str(),
            env.event_id.as_str(),
            msg.attributes.get("traceparent").cloned(),
        )
        .await?;
        let enriched = match enrich(self, env, &log.state).await {
            ControlFlow::Continue(enriched) => enriched,
            ControlFlow::Break(d) => return Ok(ControlFlow::Break(d)),
        };
        if let Some(update) = enriched.update {
            log.stage_as(Some(env.event_id.to_string()), update);
            log.flush_or_resume(events, env.event_id.as_str()).await?;
        }
        for incoming in &enriched.messages {
            let shadow = self.shadow_now().await;
            let requested_now = self
                .record_and_decide(&mut log, env, incoming, shadow)
                .await?;
            let mut step = self
                .perform_pending(&mut log, requested_now, shadow)
                .await?;
            if shadow && log.flush_or_resume(events, &incoming.event_id).await? {
                // Recorded before, by another delivery: what it left open
                // is resumed from the log (nothing was sent meanwhile).
                step = self
                    .perform_pending(&mut log, HashSet::new(), shadow)
                    .await?;
                log.flush(events).await?;
            }
            if let ControlFlow::Break(d) = step {
                return Ok(ControlFlow::Break(d));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Record one incoming message with its decision (and the first
    /// action's request) in one append — staged only, for the caller's
    /// one append, when `shadow`. Returns the keys whose request this
    /// delivery recorded. A message already folded into the projection is
    /// resumed, not re-decided. One that is not may still be in the log
    /// under its event id (no message id to look up): the append then
    /// fails with `AlreadyAppended` and the reloaded log resumes it — no
    /// extra read for every new message (such a redelivery pays for one
    /// decision, possibly a classifier call, before it finds out).
    async fn record_and_decide(
        &self,
        log: &mut ConversationLog,
        env: &envelope::Envelope,
        incoming: &Incoming,
        shadow: bool,
    ) -> Result<HashSet<String>, LogError> {
        let mut requested_now = HashSet::new();
        if incoming
            .message_id
            .as_deref()
            .is_some_and(|id| log.state.has_message(id))
        {
            debug!("message already in the log: resuming its actions");
            return Ok(requested_now);
        }
        let decided = self.decide(log, incoming, shadow).await;
        let (intent, route, actions) = (
            decided.decision.intent.clone(),
            decided.decision.route.clone(),
            decided.decision.actions.len(),
        );
        log.stage_as(Some(incoming.event_id.clone()), incoming.received_body(env));
        log.stage(decided.into_events());
        // The first action's request shares the decision's append.
        if let Some((key, pending)) = next_pending(&log.state, &log.causation)
            && pending.state == ActionState::Planned
        {
            log.stage([EventBody::ActionRequested {
                key: key.clone(),
                action: pending.action,
            }]);
            requested_now.insert(key);
        }
        if !shadow
            && log
                .flush_or_resume(self.backend.events.as_ref(), &incoming.event_id)
                .await?
        {
            // Recorded before (a redelivery, or another delivery first):
            // resume from the log.
            requested_now.clear();
        } else {
            info!(
                intent = intent.as_deref().unwrap_or("none"),
                route = route.as_deref().unwrap_or("none"),
                actions,
                "message recorded and decided"
            );
        }
        Ok(requested_now)
    }

    /// Whether Richpanel writes decided now are shadowed (the `shadow` flag,
    /// or no Richpanel credentials).
    async fn shadow_now(&self) -> bool {
        self.downstreams.flags().await.shadow
            || self.downstreams.shadowed(downstream::Downstream::Richpanel)
    }

    async fn decide(
        &self,
        log: &ConversationLog,
        incoming: &Incoming,
        shadow: bool,
    ) -> conversation::Decided {
        let model = if self.config.use_model
            && incoming.author == conversation::Author::Customer
            && !incoming.text.is_empty()
        {
            self.classify(&incoming.text).await
        } else {
            None
        };
        let facts = MessageFacts {
            event_id: &incoming.event_id,
            conversation_id: &log.name,
            text: &incoming.text,
            subject: incoming.subject.as_deref(),
            author: incoming.author,
            ticket_id: incoming
                .ticket_id
                .as_deref()
                .or(log.state.ticket_id.as_deref()),
            customer_name: incoming.customer_name.as_deref(),
            order_ref: incoming.order_ref.as_deref(),
            mode: if shadow {
                DecisionMode::Shadow
            } else {
                DecisionMode::Live
            },
        };
        decide(&self.rules, &facts, &log.state, Utc::now(), model.as_ref())
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
    /// An outcome shares its append with the next action's request, and
    /// every request is durable before its call is made. `requested_now`:
    /// keys whose request is already recorded by this delivery (not an
    /// interrupted earlier attempt). `shadow`: the calls are shadowed, so
    /// everything stays staged for the caller's one append.
    async fn perform_pending(
        &self,
        log: &mut ConversationLog,
        mut requested_now: HashSet<String>,
        shadow: bool,
    ) -> Result<Step, LogError> {
        let events = self.backend.events.as_ref();
        while let Some((key, pending)) = next_pending(&log.state, &log.causation) {
            let interrupted =
                pending.state == ActionState::Requested && !requested_now.contains(&key);
            if interrupted && !pending.action.idempotent() {
                warn!(key = %envelope::redact::log_id(&key), "non-idempotent action with unknown outcome: handing to a human");
                log.stage(interrupted_events(&key, &pending.action));
                continue;
            }
            if !requested_now.remove(&key) {
                log.stage([EventBody::ActionRequested {
                    key: key.clone(),
                    action: pending.action.clone(),
                }]);
            }
            // Recorded as requested before it is performed.
            if !shadow {
                log.flush(events).await?;
            }
            let next = self
                .perform_one(log, &key, &pending, &mut requested_now, shadow)
                .await?;
            let stop = match next {
                Next::Continue => continue,
                Next::RetryLater { after, reason } => Disposition::Retry {
                    after,
                    reason,
                    paused: None,
                },
                Next::Hold { downstream, reason } => Disposition::Retry {
                    after: None,
                    reason,
                    paused: Some(downstream),
                },
            };
            if !shadow {
                log.flush(events).await?;
            }
            return Ok(ControlFlow::Break(stop));
        }
        if !shadow {
            log.flush(events).await?;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Perform one requested action and stage the events of its outcome
    /// (a follow-up request among them joins `requested_now`).
    async fn perform_one(
        &self,
        log: &mut ConversationLog,
        key: &str,
        pending: &PendingAction,
        requested_now: &mut HashSet<String>,
        shadow: bool,
    ) -> Result<Next, LogError> {
        let outcome = crate::perform::perform(self, &log.state, key, &pending.action, shadow).await;
        if matches!(outcome, conversation::Outcome::Completed { .. })
            && self.faults.take_crash(pending.action.customer_facing())
        {
            return Err(LogError::Port(PortError::Unavailable(
                "injected crash after a downstream write".into(),
            )));
        }
        let (bodies, next) = outcome_events(key, &pending.action, outcome, &log.state, &self.rules);
        for body in &bodies {
            if let EventBody::ActionRequested { key, .. } = body {
                requested_now.insert(key.clone());
            }
        }
        log.stage(bodies);
        Ok(next)
    }

    /// Before `msg` is dead-lettered: close every action its envelope left
    /// open ([`conversation::dead_letter_events`]) and hand the
    /// conversation to a human with the reason. Best effort: a stream that
    /// cannot be read or written is left as it is (logged).
    pub(crate) async fn close_dead_lettered(&self, msg: &ReceivedMessage, reason: &str) {
        let Ok(env) = envelope::decode(msg.body.as_bytes()) else {
            return;
        };
        let causation = env.event_id.as_str();
        let closed = ConversationLog::append_at_version(
            self.backend.events.as_ref(),
            env.conversation_id.as_str(),
            causation,
            msg.attributes.get("traceparent").cloned(),
            |state| {
                let events = conversation::dead_letter_events(state, causation, reason);
                (!events.is_empty()).then_some(((), events))
            },
        )
        .await;
        if let Err(e) = closed {
            warn!(error = %envelope::redact::redacted(&e), "cannot close the actions of a dead-lettered message");
        }
    }
}
