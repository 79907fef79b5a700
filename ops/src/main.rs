//! `switchyard`: the operator's one binary. Thin: every command lives in
//! `cmd/<name>.rs` and calls into the library crates.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Webhook middleware for customer-support traffic: ingress, ordered worker,
/// event log, safety layers, and the ops tools around them.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print what a webhook or email becomes (envelope v1 JSON).
    ///
    /// Example: switchyard normalize --source email message.eml
    Normalize(cmd::normalize::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Normalize(args) => cmd::normalize::run(args),
    }
}
