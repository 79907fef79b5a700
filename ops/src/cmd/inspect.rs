//! `switchyard inspect <conversation>`: the events as a timeline (why each
//! action happened or was suppressed) and the stored projection.
use std::process::ExitCode;

use anyhow::Context;
use conversation::{Event, EventBody};
use serde_json::json;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: switchyard inspect 12345_acme_678 --json")]
pub struct Args {
    /// The conversation id (Richpanel ticket id, or `email:<thread>`).
    pub conversation: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, backend_args: BackendArgs) -> anyhow::Result<ExitCode> {
    let backend = backend_args.open().await?;
    let events = conversation::read_events(backend.events.as_ref(), &args.conversation)
        .await
        .context("reading the stream")?;
    let stored = conversation::stored_state(backend.events.as_ref(), &args.conversation)
        .await
        .context("reading the projection")?;
    let state = match &stored {
        conversation::StoredState::Current(c) => serde_json::to_value(c).ok(),
        conversation::StoredState::Stale { reason, .. } => {
            eprintln!("the stored projection is stale ({reason}): `switchyard replay` rewrites it");
            None
        }
        conversation::StoredState::Missing if events.is_empty() => {
            eprintln!("no conversation {:?}", args.conversation);
            return Ok(ExitCode::from(3));
        }
        conversation::StoredState::Missing => None,
    };
    if args.json {
        super::print_json(
            &json!({"conversation": args.conversation, "events": events, "projection": state}),
        );
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "conversation {}  ({} events)",
        args.conversation,
        events.len()
    );
    for event in &events {
        out!(
            "{:>4}  {}  {:<20} {}",
            event.seq,
            event.at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
            event.kind(),
            describe(event)
        );
    }
    if let Some(state) = state {
        out!(
            "\nprojection:\n{}",
            serde_json::to_string_pretty(&state).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line saying what happened and why. Message text is redacted.
pub fn describe(event: &Event) -> String {
    let body = &event.body;
    match body {
        EventBody::MessageReceived { .. } | EventBody::TicketUpdated { .. } => intake_line(body),
        EventBody::DecisionMade(_) => decision_line(body),
        EventBody::ActionRequested { .. }
        | EventBody::ActionCompleted { .. }
        | EventBody::ActionFailed { .. }
        | EventBody::ActionSuppressed { .. }
        | EventBody::ActionOutcomeUnknown { .. } => action_line(body),
        EventBody::HandedToHuman { reason } => format!("handed to a human: {reason}"),
        EventBody::HandedBack { by, reason } => {
            format!("handed back to automation by {by}: {reason}")
        }
    }
}

/// What came in: a message, or news of a ticket. (Other events: "".)
fn intake_line(body: &EventBody) -> String {
    match body {
        EventBody::MessageReceived {
            author,
            channel,
            text,
            message_id,
            ..
        } => {
            let preview: String = envelope::redact::redact(text).chars().take(60).collect();
            format!(
                "{author:?} on {channel} (msg {}): {preview:?}",
                message_id.as_deref().unwrap_or("-")
            )
        }
        EventBody::TicketUpdated {
            ticket_id,
            new_messages,
            note,
            trigger,
        } => format!(
            "ticket {ticket_id} has news (trigger {}): {new_messages} new message(s){}",
            trigger.as_deref().unwrap_or("-"),
            note_suffix(note.as_deref())
        ),
        _ => String::new(),
    }
}

/// The intent, route and mode decided, and by whom. (Other events: "".)
fn decision_line(body: &EventBody) -> String {
    let EventBody::DecisionMade(d) = body else {
        return String::new();
    };
    format!(
        "intent {} ({:.2}, by {}{}) → {} {}{:?}{}",
        d.intent.as_deref().unwrap_or("none"),
        d.confidence,
        d.decided_by.as_str(),
        if d.tier0 { ", TIER-0" } else { "" },
        d.route.as_deref().unwrap_or("-"),
        d.template
            .as_deref()
            .map(|t| format!("template {t}, "))
            .unwrap_or_default(),
        d.mode,
        note_suffix(d.note.as_deref())
    )
}

/// An action's progress, with its idempotency key. (Other events: "".)
fn action_line(body: &EventBody) -> String {
    match body {
        EventBody::ActionRequested { key, action } => {
            format!("{} requested [{key}]", action.name())
        }
        EventBody::ActionCompleted { key, status } => format!(
            "completed (HTTP {}) [{key}]",
            status.map_or("-".into(), |s| s.to_string())
        ),
        EventBody::ActionFailed {
            key,
            error,
            retryable,
        } => format!(
            "failed{}: {error} [{key}]",
            if *retryable { " (will retry)" } else { "" }
        ),
        EventBody::ActionSuppressed {
            key,
            reason,
            detail,
            would_send,
        } => format!(
            "SUPPRESSED by {}: {detail}{} [{key}]",
            reason.as_str(),
            if would_send.is_some() {
                " (would-be request recorded)"
            } else {
                ""
            }
        ),
        EventBody::ActionOutcomeUnknown { key } => format!("outcome UNKNOWN (interrupted) [{key}]"),
        _ => String::new(),
    }
}

/// ` — note`, or nothing.
fn note_suffix(note: Option<&str>) -> String {
    note.map(|n| format!(" — {n}")).unwrap_or_default()
}
