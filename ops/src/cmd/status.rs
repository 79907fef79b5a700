//! `switchyard status`: queue, DLQ, flags at a glance.
use std::process::ExitCode;

use anyhow::Context;
use ports::Flags;
use serde_json::json;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: switchyard status --json")]
pub struct Args {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let backend = args.backend.open().await?;
    let stats = backend.queue.stats().await.context("reading queue stats")?;
    let set = backend.flags.get_all().await.context("reading flags")?;
    let flags = Flags::from_set(&set);
    let oldest = stats.oldest_age.map(|d| d.as_secs_f64());
    if args.json {
        super::print_json(&json!({
            "backend": backend.description,
            "queue": {"visible": stats.visible, "in_flight": stats.in_flight, "dlq": stats.dlq,
                      "oldest_age_seconds": oldest},
            "flags": {"version": set.version, "kill_switch": flags.kill_switch.as_str(),
                      "shadow": flags.shadow, "safe_mode": flags.safe_mode, "values": set.values},
        }));
    } else {
        println!("backend      {}", backend.description);
        println!(
            "queue        {} waiting, {} in flight",
            stats.visible, stats.in_flight
        );
        println!(
            "oldest       {}",
            oldest.map_or("-".to_owned(), |s| format!("{s:.1} s"))
        );
        println!(
            "dlq          {}{}",
            stats.dlq,
            if stats.dlq > 0 {
                "  (see: switchyard dlq list)"
            } else {
                ""
            }
        );
        println!("kill-switch  {}", flags.kill_switch.as_str());
        println!("shadow       {}", if flags.shadow { "on" } else { "off" });
        println!(
            "safe-mode    {}",
            if flags.safe_mode { "on" } else { "off" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
