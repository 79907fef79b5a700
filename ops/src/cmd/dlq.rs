//! `switchyard dlq`: what was dead-lettered and why; redrive it back.
use std::process::ExitCode;

use anyhow::Context;
use ports::Redrive;
use serde_json::json;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  switchyard dlq list
  switchyard dlq show <id>
  switchyard dlq redrive <id>
  switchyard dlq redrive --all --group 12345_acme_678 --yes")]
pub struct Args {
    #[command(subcommand)]
    pub action: DlqAction,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum DlqAction {
    /// List dead letters with the reason each was dead-lettered.
    ///
    /// Example: switchyard dlq list --limit 20
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter in full.
    ///
    /// Example: switchyard dlq show 0190f3c2-...
    Show { id: String },
    /// Put dead letters back on the queue, keeping group, dedup id and order.
    ///
    /// Example: switchyard dlq redrive --all --yes
    Redrive {
        /// One dead letter's id.
        #[arg(conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter (optionally of one conversation).
        #[arg(long)]
        all: bool,
        /// With --all: only this conversation's message group.
        #[arg(long, requires = "all")]
        group: Option<String>,
        /// Confirm a bulk redrive.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(args: Args, backend_args: BackendArgs) -> anyhow::Result<ExitCode> {
    let backend = backend_args.open().await?;
    let queue = &backend.queue;
    match args.action {
        DlqAction::List { limit } => {
            let letters = queue.dlq_list(limit).await.context("listing the DLQ")?;
            if args.json {
                let rows: Vec<_> = letters
                    .iter()
                    .map(|d| json!({"id": d.id, "group": d.group_id, "dedup_id": d.dedup_id, "reason": d.reason,
                                    "receive_count": d.receive_count, "sent_at": d.sent_at}))
                    .collect();
                super::print_json(&json!(rows));
            } else if letters.is_empty() {
                out!("DLQ is empty");
            } else {
                for letter in letters {
                    out!(
                        "{}  group {}  received {}x  reason: {}",
                        letter.id,
                        letter.group_id,
                        letter.receive_count,
                        letter.reason
                    );
                }
            }
        }
        DlqAction::Show { id } => {
            let letters = queue.dlq_list(10_000).await.context("listing the DLQ")?;
            let Some(letter) = letters.into_iter().find(|d| d.id == id) else {
                eprintln!("no dead letter {id:?}");
                return Ok(ExitCode::from(3));
            };
            let body: serde_json::Value =
                serde_json::from_str(&letter.body).unwrap_or(json!(letter.body));
            super::print_json(&json!({
                "id": letter.id, "group": letter.group_id, "dedup_id": letter.dedup_id,
                "reason": letter.reason, "receive_count": letter.receive_count,
                "sent_at": letter.sent_at, "attributes": letter.attributes, "body": body,
            }));
        }
        DlqAction::Redrive {
            id,
            all,
            group,
            yes,
        } => {
            let which = match (id, all) {
                (Some(id), _) => Redrive::One(id),
                (None, true) => {
                    if !yes {
                        eprintln!(
                            "redrive --all moves every matching dead letter back to the queue; add --yes to confirm"
                        );
                        return Ok(ExitCode::from(2));
                    }
                    Redrive::All { group }
                }
                (None, false) => anyhow::bail!("give a dead letter id or --all"),
            };
            let redriven = queue.dlq_redrive(which).await.context("redriving")?;
            out!("redrove {redriven} message(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
