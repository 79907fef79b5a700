//! `switchyard init`: provision what the backend needs (idempotent).
use std::process::ExitCode;

use anyhow::Context;
use ports::Backend;

use crate::backend_args::BackendArgs;

/// `init` takes only the (global) backend flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: switchyard init --backend aws --aws-prefix switchyard-prod")]
pub struct Args {}

pub async fn run(_args: Args, backend_args: BackendArgs) -> anyhow::Result<ExitCode> {
    let lines = Backend::provision(&backend_args.config())
        .await
        .context("provisioning")?;
    for line in lines {
        out!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
