//! `switchyard init`: provision what the backend needs (idempotent).
use std::process::ExitCode;

use anyhow::Context;
use ports::Backend;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: switchyard init --backend aws --aws-prefix switchyard-prod")]
pub struct Args {
    #[command(flatten)]
    pub backend: BackendArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let lines = Backend::provision(&args.backend.config())
        .await
        .context("provisioning")?;
    for line in lines {
        out!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
