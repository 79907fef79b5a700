//! Enrichment: turn an envelope into the messages it stands for.
//!
//! - A message-bearing envelope is one message.
//! - An SES S3-action envelope points at the raw email in the blob store:
//!   fetch it and fill the text.
//! - A minimal Richpanel webhook ("this ticket has news") carries no
//!   message: fetch the ticket and take every message the projection has
//!   not seen yet, oldest first — nothing processed twice, nothing missed.
use std::ops::ControlFlow;
use std::time::Duration;

use conversation::{Author, Conversation, EventBody};
use envelope::{Envelope, SourceKind};
use tracing::warn;

use crate::Worker;
use crate::disposition::Disposition;

/// One message to record and decide on.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub event_id: String,
    pub message_id: Option<String>,
    pub author: Author,
    pub channel: String,
    pub text: String,
    pub subject: Option<String>,
    pub ticket_id: Option<String>,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    pub customer_name: Option<String>,
    pub order_ref: Option<String>,
}

impl Incoming {
    pub fn received_body(&self, env: &Envelope) -> EventBody {
        EventBody::MessageReceived {
            message_id: self.message_id.clone(),
            channel: self.channel.clone(),
            author: self.author,
            text: self.text.clone(),
            subject: self.subject.clone(),
            ticket_id: self.ticket_id.clone(),
            created_at: self.created_at,
            received_at: env.received_at,
            source: source_name(env.meta.source).to_owned(),
        }
    }

    /// A message of a fetched ticket.
    fn from_comment(
        worker: &Worker,
        env: &Envelope,
        ticket: &downstream::Ticket,
        ticket_id: &str,
        comment: &downstream::Comment,
    ) -> Incoming {
        let text = comment
            .plain_body
            .clone()
            .or_else(|| comment.body.clone())
            .unwrap_or_default();
        let text = envelope::text::truncate(&text, worker.normalize.max_text_chars).text;
        Incoming {
            // The id a webhook for this message would get (its message id
            // bounded as the ingress bounds it).
            event_id: format!(
                "evt:rp:{}:{}",
                env.conversation_id,
                envelope::bounded_id(&comment.id)
            ),
            message_id: Some(comment.id.clone()),
            author: if comment.is_operator {
                Author::Operator
            } else {
                Author::Customer
            },
            channel: comment
                .via
                .channel
                .clone()
                .or_else(|| ticket.via.channel.clone())
                .unwrap_or_else(|| channel_name(env)),
            order_ref: order_ref(&text),
            text,
            subject: ticket.subject.clone(),
            ticket_id: Some(ticket_id.to_owned()),
            created_at: comment
                .created_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc)),
            customer_name: None,
        }
    }

    fn from_envelope(env: &Envelope) -> Incoming {
        Incoming {
            event_id: env.event_id.to_string(),
            message_id: env
                .message
                .id
                .clone()
                .or_else(|| env.email.message_id.clone()),
            author: Author::Customer,
            channel: channel_name(env),
            text: env.message.text.clone(),
            subject: env.email.subject.clone(),
            ticket_id: env.richpanel.ticket_id.clone(),
            created_at: env.message.created_at,
            customer_name: None,
            order_ref: order_ref(&env.message.text),
        }
    }
}

/// The messages an envelope stands for.
#[derive(Debug)]
pub struct Enriched {
    /// A `TicketUpdated` (minimal webhooks), recorded under the envelope's
    /// own event id before the messages.
    pub update: Option<EventBody>,
    /// The messages to record and decide on, oldest first.
    pub messages: Vec<Incoming>,
}

/// The messages behind `env`; `Break` when the message must be retried or
/// can never be processed.
pub async fn enrich(
    worker: &Worker,
    env: &Envelope,
    state: &Conversation,
) -> ControlFlow<Disposition, Enriched> {
    if let Some(blob) = &env.blob {
        return from_raw_mail(worker, env, blob).await;
    }
    let minimal = env.meta.source == SourceKind::RichpanelHttpTarget
        && env.message.id.is_none()
        && env.message.text.trim().is_empty();
    if !minimal {
        return ControlFlow::Continue(one(env));
    }
    ControlFlow::Continue(from_ticket(worker, env, state).await?)
}

/// An SES S3-action envelope: read the raw email from the blob store.
async fn from_raw_mail(
    worker: &Worker,
    env: &Envelope,
    blob: &envelope::BlobRef,
) -> ControlFlow<Disposition, Enriched> {
    let at = format!("s3://{}/{}", blob.bucket, blob.key);
    match worker.backend.blobs.get(&blob.bucket, &blob.key).await {
        Ok(Some(raw)) => match env.clone().with_email_body(&raw, &worker.normalize) {
            Ok(full) => ControlFlow::Continue(one(&full)),
            Err(e) => poison(format!("raw email at {at} is unreadable: {e}")),
        },
        // The S3 object may lag the notification; retrying through
        // visibility ends in the DLQ if it never appears.
        Ok(None) => retry(None, format!("raw email {at} not found (yet)")),
        // A bucket outside the deployment's raw-mail buckets, or a key the
        // store refuses: no retry can fix it.
        Err(e @ ports::PortError::Invalid(_)) => poison(format!("blob store: {e}")),
        Err(e) => retry(None, format!("blob store: {e}")),
    }
}

/// A minimal Richpanel webhook: fetch the ticket and take every message
/// the projection has not seen yet, oldest first.
async fn from_ticket(
    worker: &Worker,
    env: &Envelope,
    state: &Conversation,
) -> ControlFlow<Disposition, Enriched> {
    let ticket_id = env
        .richpanel
        .ticket_id
        .clone()
        .unwrap_or_else(|| env.conversation_id.to_string());
    let update = |new_messages: usize, note: Option<String>| {
        Some(EventBody::TicketUpdated {
            ticket_id: ticket_id.clone(),
            trigger: env.richpanel.trigger.clone(),
            new_messages: u32::try_from(new_messages).unwrap_or(u32::MAX),
            note,
        })
    };
    let nothing = |note: String| {
        ControlFlow::Continue(Enriched {
            update: update(0, Some(note)),
            messages: Vec::new(),
        })
    };
    // No credential (config or secrets port): the ticket cannot be read.
    if worker
        .downstreams
        .shadowed(downstream::Downstream::Richpanel)
    {
        return nothing("Richpanel is not configured: ticket not fetched".into());
    }
    match worker.downstreams.richpanel().get_ticket(&ticket_id).await {
        Ok(ticket) => {
            let mut messages: Vec<Incoming> = ticket
                .comments
                .iter()
                .filter(|comment| !state.has_message(&comment.id))
                .map(|comment| Incoming::from_comment(worker, env, &ticket, &ticket_id, comment))
                .collect();
            messages.sort_by_key(|comment| comment.created_at);
            ControlFlow::Continue(Enriched {
                update: update(messages.len(), None),
                messages,
            })
        }
        Err(e @ downstream::CallError::Paused { downstream }) => {
            ControlFlow::Break(Disposition::Retry {
                after: None,
                reason: format!("fetching ticket: {e}"),
                paused: Some(downstream.as_str().to_owned()),
            })
        }
        Err(e @ downstream::CallError::RateLimited { retry_after }) => {
            retry(retry_after, format!("fetching ticket: {e}"))
        }
        Err(e) if e.is_retryable() || matches!(e, downstream::CallError::CircuitOpen { .. }) => {
            retry(None, format!("fetching ticket: {e}"))
        }
        Err(e) => {
            warn!(error = %envelope::redact::redacted(&e), "ticket could not be fetched");
            nothing(format!("ticket could not be fetched: {e}"))
        }
    }
}

fn retry<T>(after: Option<Duration>, reason: String) -> ControlFlow<Disposition, T> {
    ControlFlow::Break(Disposition::Retry {
        after,
        reason,
        paused: None,
    })
}

fn poison<T>(reason: String) -> ControlFlow<Disposition, T> {
    ControlFlow::Break(Disposition::Poison(reason))
}

fn one(env: &Envelope) -> Enriched {
    Enriched {
        update: None,
        messages: vec![Incoming::from_envelope(env)],
    }
}

fn channel_name(env: &Envelope) -> String {
    serde_json::to_value(env.channel)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn source_name(s: SourceKind) -> &'static str {
    match s {
        SourceKind::RichpanelHttpTarget => "richpanel_http_target",
        SourceKind::SesSns => "ses_sns",
        SourceKind::SesLambda => "ses_lambda",
        SourceKind::EmailRaw => "email_raw",
    }
}

/// An order reference like `#1234` in the text, for templates.
fn order_ref(text: &str) -> Option<String> {
    let start = text.find('#')?;
    let digits: String = text[start + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (digits.len() >= 3 && digits.len() <= 12).then(|| format!("#{digits}"))
}
