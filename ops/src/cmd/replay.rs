//! `switchyard replay`: rebuild projections from the log. Never performs
//! side effects: it only reads events and (without --verify) rewrites
//! projections that differ.
use std::process::ExitCode;

use anyhow::Context;
use conversation::StoredState;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  switchyard replay --all --verify     # exit 1 if any stored projection differs
  switchyard replay 12345_acme_678     # rebuild one projection")]
pub struct Args {
    /// One conversation to replay.
    #[arg(conflicts_with = "all", required_unless_present = "all")]
    pub conversation: Option<String>,
    /// Replay every conversation.
    #[arg(long)]
    pub all: bool,
    /// Only compare; report differences and exit non-zero on any.
    #[arg(long)]
    pub verify: bool,
}

pub async fn run(args: Args, backend_args: BackendArgs) -> anyhow::Result<ExitCode> {
    let backend = backend_args.open().await?;
    let store = backend.events.as_ref();
    let mut streams = Vec::new();
    if let Some(c) = &args.conversation {
        streams.push(c.clone());
    } else {
        let mut pager = conversation::StreamPager::new(store);
        while let Some(page) = pager.next_page(500).await.context("listing streams")? {
            streams.extend(page);
        }
    }
    let (mut same, mut differ, mut fixed) = (0usize, 0usize, 0usize);
    for name in &streams {
        let rebuilt = conversation::rebuild(store, name)
            .await
            .with_context(|| format!("replaying {name}"))?;
        let stored = conversation::stored_state(store, name)
            .await
            .with_context(|| format!("reading projection of {name}"))?;
        let (stored_version, why) = match &stored {
            StoredState::Current(c) if **c == rebuilt => {
                same += 1;
                continue;
            }
            StoredState::Current(c) => (Some(c.version), String::new()),
            StoredState::Stale { version, reason } => (Some(*version), format!(" ({reason})")),
            StoredState::Missing => (None, " (no stored projection)".into()),
        };
        differ += 1;
        out!(
            "DIFFERS {name}: stored version {stored_version:?}, log version {}{why}",
            rebuilt.version
        );
        if !args.verify {
            let version = stored_version.unwrap_or(0);
            let state = serde_json::to_string(&rebuilt)?;
            if version == rebuilt.version {
                store
                    .put_projection(name, version, state)
                    .await
                    .with_context(|| format!("rewriting {name}"))?;
                fixed += 1;
            } else {
                out!(
                    "  not rewritten: the stored version differs from the log (is a worker running?)"
                );
            }
        }
    }
    out!(
        "{} streams: {same} match, {differ} differ{}",
        streams.len(),
        if args.verify {
            String::new()
        } else {
            format!(", {fixed} rewritten")
        }
    );
    Ok(if args.verify && differ > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
