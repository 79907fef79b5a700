//! `switchyard handback <conversation> --reason R`: lift a human hold, so
//! automated replies resume with the conversation's next message.
use std::process::ExitCode;

use anyhow::Context;
use conversation::HandBack;
use serde_json::json;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "A conversation is handed to a human by a Tier-0 intent, a failed or \
unknown-outcome reply, or an open breaker; from then on it gets no automated reply until an \
operator hands it back here. `inspect` shows the hold and why.

Example: switchyard handback 12345_acme_678 --reason \"refund done, customer answered\""
)]
pub struct Args {
    /// The conversation id (as `inspect` takes it).
    pub conversation: String,
    /// Why automation may resume (recorded in the event).
    #[arg(long)]
    pub reason: String,
    /// Who (default: $SWITCHYARD_ACTOR, else the OS user).
    #[arg(long, env = "SWITCHYARD_ACTOR")]
    pub by: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, backend_args: BackendArgs) -> anyhow::Result<ExitCode> {
    if args.reason.trim().is_empty() {
        anyhow::bail!("--reason must say why automation may resume");
    }
    let backend = backend_args.open().await?;
    let by = super::flags::actor(args.by);
    let outcome = conversation::hand_back(
        backend.events.as_ref(),
        &args.conversation,
        &by,
        &args.reason,
    )
    .await
    .context("handing the conversation back")?;
    let (code, held) = match &outcome {
        HandBack::Released(hold) => (ExitCode::SUCCESS, Some(hold)),
        HandBack::NotHeld => (ExitCode::from(3), None),
    };
    if args.json {
        super::print_json(&json!({
            "conversation": args.conversation,
            "released": held.is_some(),
            "held_since": held.map(|h| h.since),
            "held_because": held.map(|h| h.reason.clone()),
        }));
    } else if let Some(hold) = held {
        out!(
            "{}: handed back to automation by {by} (held since {}: {})",
            args.conversation,
            hold.since.format("%Y-%m-%d %H:%M:%SZ"),
            hold.reason
        );
    } else {
        out!(
            "{}: not handed to a human; nothing to do",
            args.conversation
        );
    }
    Ok(code)
}
