//! The command line: `switchyard [backend flags] <command> ...`. The
//! backend flags are global: they may stand anywhere on the line.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::backend_args::BackendArgs;
use crate::cmd;

/// Webhook middleware for customer-support traffic: an ack-fast ingress, an
/// ordered per-conversation worker, an event log, and safety layers an
/// operator can flip at any moment.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run ingress + worker in one process (embedded backend by default).
    ///
    /// Example: switchyard serve --listen 127.0.0.1:8080 --data-dir ./data
    Serve(cmd::serve::Args),
    /// Create the queues, tables or data dir the backend needs (idempotent).
    ///
    /// Example: switchyard init --backend aws --aws-prefix switchyard-prod
    Init(cmd::init::Args),
    /// Show, set and audit operator flags (kill switch, shadow, safe mode...).
    ///
    /// Example: switchyard flags set kill-switch all_writes --reason "bad replies"
    Flags(cmd::flags::Args),
    /// Queue depth, in flight, DLQ depth, stuck conversations, flags.
    ///
    /// Example: switchyard status --json
    Status(cmd::status::Args),
    /// A conversation's events as a timeline, and its projection.
    ///
    /// Example: switchyard inspect 12345_acme_678
    Inspect(cmd::inspect::Args),
    /// Rebuild projections from the log (never performs side effects).
    ///
    /// Example: switchyard replay --all --verify
    Replay(cmd::replay::Args),
    /// Hand a conversation that was handed to a human back to automation.
    ///
    /// Example: switchyard handback 12345_acme_678 --reason "customer answered"
    Handback(cmd::handback::Args),
    /// Inspect and redrive dead-lettered messages.
    ///
    /// Example: switchyard dlq list
    Dlq(cmd::dlq::Args),
    /// Print what a webhook or email becomes (envelope v1 JSON).
    ///
    /// Example: switchyard normalize --source email message.eml
    Normalize(cmd::normalize::Args),
}

impl Cli {
    /// Run the parsed command; errors become one line on stderr.
    pub fn run(self) -> ExitCode {
        let backend = self.backend;
        match self.command {
            Command::Normalize(args) => cmd::normalize::run(args),
            Command::Serve(args) => cmd::block_on(cmd::serve::run(args, backend)),
            Command::Init(args) => cmd::block_on(cmd::init::run(args, backend)),
            Command::Flags(args) => cmd::block_on(cmd::flags::run(args, backend)),
            Command::Status(args) => cmd::block_on(cmd::status::run(args, backend)),
            Command::Inspect(args) => cmd::block_on(cmd::inspect::run(args, backend)),
            Command::Replay(args) => cmd::block_on(cmd::replay::run(args, backend)),
            Command::Dlq(args) => cmd::block_on(cmd::dlq::run(args, backend)),
            Command::Handback(args) => cmd::block_on(cmd::handback::run(args, backend)),
        }
    }
}
