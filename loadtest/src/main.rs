//! `loadtest`: an open-loop load harness for switchyard with fault
//! injection, an invariant checker and text / JSON / HTML reports.
//!
//! ```text
//! loadtest run --spawn-serve --scenario loadtest/scenarios/smoke.toml --report out.json --html out.html
//! loadtest run --target http://127.0.0.1:8080 --token T --data-dir data --rate 500 --duration 30s
//! loadtest chaos --backend aws --kills 50
//! ```
//! `chaos` SIGKILLs a spawned serve again and again under traffic and
//! checks what survived (see `chaos/mod.rs`).
//! Exit status: 0 = invariants green, 1 = an invariant was violated,
//! 2 = the run itself failed (bad arguments, target unreachable, ...).
#![forbid(unsafe_code)]

mod chaos;
mod checker;
mod faults;
mod html;
mod report;
mod run;
mod sample;
mod scenario;
mod send;
mod sns;
mod target;
mod traffic;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    about = "Open-loop load harness for switchyard, with an invariant checker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a scenario's traffic, drain the queue, check the invariants, report.
    Run(RunArgs),
    /// SIGKILL serve at random moments under traffic, restart it, check
    /// that nothing was lost, duplicated, reordered or sent twice.
    Chaos(chaos::ChaosArgs),
    /// A local OTLP/HTTP trace receiver (`POST /v1/traces`): decodes and
    /// counts the spans sent to it, prints the totals every 5 s; with
    /// `--dump FILE`, writes every span as JSON lines there on Ctrl-C.
    Collector(CollectorArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Example:
  loadtest collector --listen 127.0.0.1:4318 &
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 switchyard serve")]
pub struct CollectorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub listen: String,
    /// Write the spans received, one JSON object per line, here on exit.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Draw the trace with the most spans as an SVG waterfall here on exit.
    #[arg(long)]
    pub waterfall: Option<PathBuf>,
}

async fn collector(args: CollectorArgs) -> anyhow::Result<bool> {
    let c = loadtest::otlp::Collector::start_on(&args.listen).await?;
    println!("collector: listening on {}", c.endpoint());
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (requests, bad) = c.requests();
                println!("collector: {} spans in {requests} exports ({bad} undecodable)", c.spans().len());
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if let Some(path) = args.dump {
        let mut out = String::new();
        for s in c.spans() {
            out.push_str(&serde_json::to_string(&s)?);
            out.push('\n');
        }
        std::fs::write(&path, out)?;
        println!("collector: spans written to {}", path.display());
    }
    if let Some(path) = args.waterfall {
        let spans = c.spans();
        let mut by_trace: std::collections::BTreeMap<&str, Vec<loadtest::otlp::ExportedSpan>> =
            Default::default();
        for s in &spans {
            by_trace
                .entry(s.trace_id.as_str())
                .or_default()
                .push(s.clone());
        }
        if let Some(trace) = by_trace.values().max_by_key(|t| t.len()) {
            let show = [
                "http.route",
                "http.response.status_code",
                "messaging.system",
                "switchyard.verdict",
                "switchyard.reason",
                "server.address",
            ];
            std::fs::write(&path, loadtest::otlp::waterfall(trace, &show))?;
            println!(
                "collector: waterfall of trace {} written to {}",
                trace[0].trace_id,
                path.display()
            );
        }
    }
    Ok(true)
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  loadtest run --spawn-serve --scenario loadtest/scenarios/smoke.toml --report smoke.json --html smoke.html
  loadtest run --spawn-serve --rate 5000 --duration 20s --report max.json
  loadtest run --target http://127.0.0.1:8080 --token T --data-dir data --fake http://127.0.0.1:8700 --scenario s.toml --report r.json")]
pub struct RunArgs {
    /// Scenario file (TOML). Without it, give --rate and --duration.
    #[arg(long, conflicts_with_all = ["rate", "duration"])]
    pub scenario: Option<PathBuf>,
    /// Requests per second (one constant phase).
    #[arg(long, requires = "duration")]
    pub rate: Option<f64>,
    /// Length of the constant phase, e.g. 30s.
    #[arg(long, requires = "rate")]
    pub duration: Option<String>,
    /// Divide every duration by N and multiply every rate by N (same
    /// messages, N times faster) — for long profiles such as the soak.
    #[arg(long, default_value_t = 1.0)]
    pub compress: f64,
    /// A running switchyard ingress, e.g. http://127.0.0.1:8080.
    #[arg(
        long,
        required_unless_present = "spawn_serve",
        conflicts_with = "spawn_serve"
    )]
    pub target: Option<String>,
    /// Start `switchyard serve` (and in-process fake downstreams) ourselves.
    #[arg(long)]
    pub spawn_serve: bool,
    /// The `switchyard` binary for --spawn-serve (default: next to this one, else PATH).
    #[arg(long)]
    pub serve_bin: Option<PathBuf>,
    /// Extra environment for the spawned serve, KEY=VALUE (repeatable).
    #[arg(long = "serve-env", value_name = "KEY=VALUE")]
    pub serve_env: Vec<String>,
    /// Extra argument for the spawned serve, e.g. --serve-arg=--ingress-only (repeatable).
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// Webhook token (required with --target).
    #[arg(long, env = "SWITCHYARD_WEBHOOK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, default_value = "X-Switchyard-Token")]
    pub token_header: String,
    /// Data dir of the embedded backend `serve` runs on (the checker reads
    /// the log there). With --spawn-serve: use it instead of a temp dir.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Check an AWS deployment instead: its name prefix (AWS_* environment).
    #[arg(long, conflicts_with = "data_dir")]
    pub aws_prefix: Option<String>,
    /// Control API of a running fake-downstream (faults, kill-switch check).
    #[arg(long)]
    pub fake: Option<String>,
    /// PID of an external serve, to measure its CPU and memory.
    #[arg(long)]
    pub serve_pid: Option<u32>,
    /// JSON report path.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// HTML report path.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Open requests at most; an arrival finding none free is an error
    /// (`client_saturated`), never a delay.
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// How long to wait for the queue to drain after sending.
    #[arg(long, default_value = "120s")]
    pub drain_timeout: String,
    /// Body size of the oversized-request case (over the ingress limit).
    #[arg(long, default_value_t = 256 * 1024)]
    pub oversize_bytes: usize,
    /// Where the harness serves its SNS signing certificate (SES traffic,
    /// `mix.ses > 0`). serve must reach it: against a remote --target, give
    /// an address of this machine that serve can connect to.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sns_cert_listen: String,
    /// Override the scenario's kill-switch propagation bound (ms).
    #[arg(long)]
    pub kill_switch_bound_ms: Option<u64>,
    /// Skip draining and the invariant checker (measurement only).
    #[arg(long)]
    pub no_check: bool,
    /// Backlog drain (needs --spawn-serve): serve runs `--ingress-only`
    /// while the traffic is sent, then a fresh serve with its worker on
    /// drains the backlog alone. Measures the worker's drain rate and CPU
    /// per message without the load generator competing for the cores.
    /// End-to-end latencies then include the hold.
    #[arg(long)]
    pub backlog: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match cli.command {
        Command::Run(args) => rt.block_on(run::run(args)),
        Command::Chaos(args) => rt.block_on(chaos::run(args)),
        Command::Collector(args) => rt.block_on(collector(args)),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}
