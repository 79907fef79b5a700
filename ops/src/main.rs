//! `switchyard`: the operator's one binary. Thin: every command lives in
//! `cmd/<name>.rs` and calls into the library crates.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for command output that may go into a pipe: when the reader
/// has gone (`switchyard inspect X | head`), stop quietly instead of
/// panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod backend_args;
mod cmd;
mod telemetry;

/// Webhook middleware for customer-support traffic: an ack-fast ingress, an
/// ordered per-conversation worker, an event log, and safety layers an
/// operator can flip at any moment.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Normalize(args) => cmd::normalize::run(args),
        Command::Serve(args) => cmd::block_on(cmd::serve::run(args)),
        Command::Init(args) => cmd::block_on(cmd::init::run(args)),
        Command::Flags(args) => cmd::block_on(cmd::flags::run(args)),
        Command::Status(args) => cmd::block_on(cmd::status::run(args)),
        Command::Inspect(args) => cmd::block_on(cmd::inspect::run(args)),
        Command::Replay(args) => cmd::block_on(cmd::replay::run(args)),
        Command::Dlq(args) => cmd::block_on(cmd::dlq::run(args)),
        Command::Handback(args) => cmd::block_on(cmd::handback::run(args)),
    }
}
