//! `loadtest chaos`: SIGKILL `switchyard serve` at random moments while
//! realistic traffic flows and Richpanel is live (slow writes), restart it
//! on the same state, then prove from the harness's own reads that nothing
//! was lost, duplicated, reordered or sent to a customer twice.
//!
//! # Layout
//! - `serve.rs` — start (on a fixed port after the first), SIGKILL, stop;
//!   `switchyard init` for the AWS backend.
//! - `senders.rs` — one sequential sender per conversation: retries the
//!   same body until acknowledged, re-sends acknowledged ones (duplicates).
//! - `killer.rs` — the kill schedule: anywhere, inside a reply write,
//!   inside an ack.
//! - `verify.rs` — the checks on the log, the fake's request log and the DLQ.
//!
//! One summary line on stdout (details of violations on stderr); exit 0 =
//! every check held, 1 = a violation, 2 = the run itself failed.
mod killer;
mod senders;
mod serve;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use downstream::fake::{FakeConfig, FakeHandle, FakeServer, LatencyRange};
use ports::Backend;
use tokio::time::Instant;

use crate::scenario::parse_duration;
use killer::{Aim, Kill, Schedule};
use senders::{Progress, Traffic};
use serve::{ServeSpec, Store};
use verify::Counts;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  loadtest chaos --backend embedded --kills 50
  . .local-aws/env && loadtest chaos --backend aws --kills 0 --workers 3 --late-answer-rate 0 --conversations 50 --messages 20
  . .local-aws/env && loadtest chaos --backend aws --kills 50 --kill-min 300ms --kill-max 5s")]
pub struct ChaosArgs {
    /// Backend serve runs on.
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "aws"])]
    pub backend: String,
    /// AWS: name prefix of the queues and tables (default: a fresh
    /// `chaos-<run id>`, provisioned with `switchyard init`).
    #[arg(long)]
    pub aws_prefix: Option<String>,
    /// Embedded: the data dir (default: a fresh one in the work dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where serve's logs go (default: a temp dir, kept when a check fails).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The `switchyard` binary (default: next to this one, else PATH).
    #[arg(long)]
    pub serve_bin: Option<PathBuf>,
    /// Extra environment for serve, KEY=VALUE (repeatable; applied last).
    #[arg(long = "serve-env", value_name = "KEY=VALUE")]
    pub serve_env: Vec<String>,
    /// SIGKILLs before the queue is left to drain.
    #[arg(long, default_value_t = 10)]
    pub kills: usize,
    /// serve processes on the one queue: the first takes the traffic and
    /// the kills; the others only work the queue beside it and are never
    /// killed. With no kills and no late answers nothing can leave an
    /// action's outcome unknown, so an unknown outcome or a hand-off the
    /// rules did not ask for counts as a violation (two processes on one
    /// conversation at once).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub workers: u32,
    /// Shortest pause between a restart and the next kill.
    #[arg(long, default_value = "300ms")]
    pub kill_min: String,
    /// Longest pause between a restart and the next kill.
    #[arg(long, default_value = "5s")]
    pub kill_max: String,
    /// Concurrent conversations (one sequential sender each).
    #[arg(long, default_value_t = 20)]
    pub conversations: usize,
    /// Messages per ticket; each sender moves on to a new ticket after them.
    #[arg(long, default_value_t = 5)]
    pub messages: usize,
    /// Chance, after each acknowledged message, of re-sending an
    /// acknowledged body of the same ticket.
    #[arg(long, default_value_t = 0.15)]
    pub duplicate_rate: f64,
    /// Richpanel writes are applied on arrival and answered after a random
    /// delay: its lower bound (ms).
    #[arg(long, default_value_t = 50)]
    pub write_latency_min_ms: u64,
    /// Upper bound (ms) of that delay.
    #[arg(long, default_value_t = 400)]
    pub write_latency_max_ms: u64,
    /// Share of Richpanel writes answered only after --late-answer-ms
    /// (past the client's timeout): applied, outcome unknown to serve.
    #[arg(long, default_value_t = 0.03)]
    pub late_answer_rate: f64,
    #[arg(long, default_value_t = 3_000)]
    pub late_answer_ms: u64,
    /// serve's Richpanel client timeout (SWITCHYARD_RICHPANEL_TIMEOUT_MS).
    #[arg(long, default_value_t = 2_000)]
    pub richpanel_timeout_ms: u64,
    /// Longest wait for one message to be acknowledged.
    #[arg(long, default_value = "120s")]
    pub ack_deadline: String,
    /// Longest wait for the queue to drain after the last kill.
    #[arg(long, default_value = "180s")]
    pub drain_timeout: String,
    /// Seed of the traffic and the kill schedule (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// No line per kill.
    #[arg(long)]
    pub quiet: bool,
}

/// Returns Ok(true) when every check held. The work dir (serve's logs,
/// the embedded data) is kept when it did not, or the run failed.
pub async fn run(args: ChaosArgs) -> anyhow::Result<bool> {
    let temp = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            None
        }
        None => Some(
            tempfile::Builder::new()
                .prefix("chaos-")
                .tempdir()
                .context("temp work dir")?,
        ),
    };
    let work = match (&args.work_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_owned(),
        (None, None) => bail!("no work dir"),
    };
    let result = run_in(&args, &work).await;
    if !matches!(result, Ok(true)) {
        eprintln!("chaos: {}", serve::logs_hint(&work));
        let _ = temp.map(tempfile::TempDir::keep);
    }
    result
}

async fn run_in(args: &ChaosArgs, work: &Path) -> anyhow::Result<bool> {
    let started = Instant::now();
    let plan = Plan::from_args(args, work)?;
    let fake = start_fake(args).await?;
    let token = format!("chaos-{}-{:016x}", plan.run_id, rand::random::<u64>());
    let spec = ServeSpec {
        bin: crate::target::serve_bin(args.serve_bin.as_deref()),
        store: plan.store.clone(),
        env: serve_env(args, &fake.base_url(), &token)?,
        logs: work.to_owned(),
    };
    eprintln!(
        "chaos: backend={} seed={} run={} kills={} workers={} conversations={} work dir {}",
        plan.store.name(),
        plan.seed,
        plan.run_id,
        args.kills,
        args.workers,
        args.conversations,
        work.display()
    );
    spec.init().await?;
    let mut beside = Vec::new();
    for n in 1..args.workers {
        beside.push(spec.start(0, 1000 + n).await?);
    }
    let (serve, kills, tickets) = traffic_under_kills(args, &plan, &spec, &fake, token).await?;
    let sent_for = started.elapsed();

    // Drain, then check with our own reads.
    let backend = Backend::open(&plan.store.backend_config())
        .await
        .context("opening the backend serve uses")?;
    let drained = crate::checker::drain(&backend, plan.drain_limit).await;
    serve.stop(Duration::from_secs(30)).await;
    for other in beside {
        other.stop(Duration::from_secs(30)).await;
    }
    let rules = conversation::Rules::default_rules()?;
    let quiet_run = args.kills == 0 && args.late_answer_rate == 0.0;
    let (counts, findings) =
        verify::check(&backend, &tickets, &fake.requests(), &rules, quiet_run).await?;
    drop(backend);

    print_findings(&findings);
    if !drained {
        eprintln!(
            "chaos: the queue did not drain within {:?}",
            plan.drain_limit
        );
    }
    eprintln!("chaos: {}", aims(&kills));
    let store = plan.store.name();
    let total = started.elapsed();
    println!(
        "{}",
        summary(store, kills.len(), &counts, drained, sent_for, total)
    );
    Ok(drained && counts.violations() == 0)
}

/// The run's parameters, checked, and where its state lives.
struct Plan {
    seed: u64,
    /// Fresh even for a repeated seed: an AWS prefix and its tickets must
    /// not meet an earlier run's.
    run_id: String,
    min_pause: Duration,
    max_pause: Duration,
    ack_deadline: Duration,
    drain_limit: Duration,
    store: Store,
}

impl Plan {
    fn from_args(args: &ChaosArgs, work: &Path) -> anyhow::Result<Plan> {
        let seed = args.seed.unwrap_or_else(rand::random);
        let run_id = format!("{:08x}", rand::random::<u32>());
        let (min_pause, max_pause) = (
            parse_duration(&args.kill_min)?,
            parse_duration(&args.kill_max)?,
        );
        if max_pause < min_pause {
            bail!("--kill-max is shorter than --kill-min");
        }
        if args.conversations == 0 || args.messages == 0 {
            bail!("--conversations and --messages must be at least 1");
        }
        let store = match args.backend.as_str() {
            "aws" => Store::Aws(
                args.aws_prefix
                    .clone()
                    .unwrap_or_else(|| format!("chaos-{run_id}")),
            ),
            _ => Store::Embedded(args.data_dir.clone().unwrap_or_else(|| work.join("data"))),
        };
        if let (Store::Embedded(dir), None) = (&store, &args.data_dir) {
            // The harness's own data dir: the only kind where serve accepts
            // the message-dropping fault of the checks' self-test.
            std::fs::create_dir_all(dir).context("creating the data dir")?;
            std::fs::write(dir.join(ports::TEST_TARGET_MARKER), b"loadtest chaos\n")
                .context("marking the data dir as a test target")?;
        }
        Ok(Plan {
            seed,
            run_id,
            min_pause,
            max_pause,
            ack_deadline: parse_duration(&args.ack_deadline)?,
            drain_limit: parse_duration(&args.drain_timeout)?,
            store,
        })
    }
}

/// The fake downstreams, Richpanel with slow and sometimes late writes.
async fn start_fake(args: &ChaosArgs) -> anyhow::Result<FakeHandle> {
    FakeServer::start(FakeConfig {
        richpanel_quota: None,
        write_latency: Some(LatencyRange {
            min_ms: args.write_latency_min_ms,
            max_ms: args.write_latency_max_ms,
        }),
        late_answer_rate: args.late_answer_rate,
        late_answer_ms: args.late_answer_ms,
        ..FakeConfig::default()
    })
    .await
    .context("starting the fake downstreams")
}

/// Start serve, send the traffic while the killer kills and restarts it;
/// returns the serve running at the end, the kills and the tickets sent.
async fn traffic_under_kills(
    args: &ChaosArgs,
    plan: &Plan,
    spec: &ServeSpec,
    fake: &FakeHandle,
    token: String,
) -> anyhow::Result<(serve::Serve, Vec<Kill>, Vec<senders::TicketLog>)> {
    let first = spec.start(0, 0).await?;
    let progress = Arc::new(Progress::default());
    let traffic = tokio::spawn(senders::run(
        Traffic {
            base: first.base.clone(),
            token,
            run_id: plan.run_id.clone(),
            senders: args.conversations,
            messages: args.messages,
            duplicate_rate: args.duplicate_rate,
            ack_deadline: plan.ack_deadline,
            seed: plan.seed,
        },
        progress.clone(),
    ));
    let schedule = Schedule {
        kills: args.kills,
        min_pause: plan.min_pause,
        max_pause: plan.max_pause,
        seed: plan.seed,
        quiet: args.quiet,
    };
    let (serve, kills) = killer::run(&schedule, spec, first, fake, progress).await;
    let serve = match serve {
        Ok(serve) => serve,
        Err(e) => {
            traffic.abort();
            return Err(e);
        }
    };
    let tickets = traffic.await.context("the senders")??;
    Ok((serve, kills, tickets))
}

/// The first few findings of each kind (a rare kind is not drowned by a
/// common one), then how many more there were.
fn print_findings(findings: &[verify::Finding]) {
    const PER_KIND: usize = 5;
    let mut by_kind: std::collections::BTreeMap<&str, Vec<&verify::Finding>> =
        std::collections::BTreeMap::new();
    for finding in findings {
        by_kind.entry(finding.what).or_default().push(finding);
    }
    for (what, all) in by_kind {
        for finding in all.iter().take(PER_KIND) {
            let ticket = finding
                .ticket
                .as_deref()
                .map(|t| format!("ticket {t}: "))
                .unwrap_or_default();
            eprintln!("chaos: {what}: {ticket}{}", finding.detail);
        }
        if all.len() > PER_KIND {
            eprintln!("chaos: {what}: ... and {} more", all.len() - PER_KIND);
        }
    }
}

/// serve's environment: Richpanel live against the fake (no shadow: it
/// has a key), no model classifier (the rules decide), the harness's token.
fn serve_env(args: &ChaosArgs, fake: &str, token: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = [
        ("SWITCHYARD_WEBHOOK_TOKEN", token.to_owned()),
        ("SWITCHYARD_RICHPANEL_BASE_URL", fake.to_owned()),
        ("SWITCHYARD_RICHPANEL_API_KEY", "chaos-key".to_owned()),
        (
            "SWITCHYARD_RICHPANEL_TIMEOUT_MS",
            args.richpanel_timeout_ms.to_string(),
        ),
        // Kills, not the 50/30 s quota, are under test here.
        ("SWITCHYARD_RICHPANEL_QUOTA_REQUESTS", "1000000".to_owned()),
        ("SWITCHYARD_RICHPANEL_QUOTA_PERIOD_MS", "1000".to_owned()),
        ("SWITCHYARD_RICHPANEL_QUOTA_BURST", "1000000".to_owned()),
        ("SWITCHYARD_OPENAI_BASE_URL", format!("{fake}/v1")),
        ("SWITCHYARD_SHOPIFY_BASE_URL", fake.to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    for pair in &args.serve_env {
        env.push(crate::target::serve_env_pair(pair)?);
    }
    Ok(env)
}

/// How the kills were aimed and how many found their moment.
fn aims(kills: &[Kill]) -> String {
    let count = |aim: Aim| {
        let of: Vec<&Kill> = kills.iter().filter(|k| k.aim == aim).collect();
        (of.len(), of.iter().filter(|k| k.hit).count())
    };
    let (any, _) = count(Aim::Anywhere);
    let (reply, reply_hit) = count(Aim::InReply);
    let (ack, ack_hit) = count(Aim::InAck);
    let slowest = kills
        .iter()
        .map(|k| k.restart)
        .max()
        .unwrap_or_default()
        .as_secs_f64();
    format!(
        "kills: {any} anywhere, {reply_hit}/{reply} inside a reply write, {ack_hit}/{ack} inside an ack; slowest restart {slowest:.1} s"
    )
}

/// The one summary line.
fn summary(
    backend: &str,
    kills: usize,
    c: &Counts,
    drained: bool,
    sent_for: Duration,
    total: Duration,
) -> String {
    let verdict = if drained && c.violations() == 0 {
        "ok"
    } else {
        "FAIL"
    };
    format!(
        "chaos: backend={backend} kills={kills} acked={} lost={} duplicated={} out_of_order={} \
         double_replies={} over_limit_templates={} missing_outcomes={} dlq={} dlq_without_reason={} \
         dup_reaccepted={} rejected={} unacked={} unrecorded_writes={} corrupt_streams={} \
         unknown_outcomes={} forced_handoffs={} drained={} \
         (redelivered={} duplicates_sent={} replies={} handed_to_human={} traffic {:.0} s, total {:.0} s) -> {verdict}",
        c.acked,
        c.lost,
        c.duplicated,
        c.out_of_order,
        c.double_replies,
        c.over_limit_templates,
        c.missing_outcomes,
        c.dlq,
        c.dlq_without_reason,
        c.dup_reaccepted,
        c.rejected,
        c.unacked,
        c.unrecorded_writes,
        c.corrupt_streams,
        c.unknown_outcomes,
        c.forced_handoffs,
        if drained { "yes" } else { "no" },
        c.redelivered,
        c.duplicates_sent,
        c.replies,
        c.handed_to_human,
        sent_for.as_secs_f64(),
        total.as_secs_f64(),
    )
}
