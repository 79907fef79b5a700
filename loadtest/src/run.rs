//! One `loadtest run`: set up the target, send, drain, check, report.
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use downstream::fake::LoggedRequest;
use ports::{AwsSettings, Backend, BackendConfig, EmbeddedSettings};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::RunArgs;
use crate::checker::{self, Checked, Violation};
use crate::faults::{Applied, Flipped};
use crate::report::{self, Inputs};
use crate::sample::{self, ProcSample, QueueSample, WriterSample, proc_sample};
use crate::scenario::{Resolved, Scenario, parse_duration};
use crate::send::{self, Live, Outcome, Target};
use crate::target::{self, Fake, Spawned};
use crate::traffic::Generator;

/// Returns Ok(true) when every invariant held.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let plan = Plan::from_args(&args)?;
    let mut target = SystemUnderTest::start(&args, &plan).await?;
    let (sent, background) = send_traffic(&args, &plan, &target).await?;
    let mut baseline = sent.baseline.clone();
    if args.backlog {
        target.start_backlog_worker(&args, &mut baseline).await?;
    }
    let observed = drain_and_collect(&args, &plan, &target, &sent, background, &baseline).await?;
    let report = build_report(&args, &plan, &target, &sent, &observed);
    write_outputs(&args, &report, observed.checked.as_ref())?;
    if let Some(serve) = target.spawned {
        serve.stop(Duration::from_secs(10)).await;
    }
    Ok(report.violations.is_empty())
}

/// What to send and how long to wait for it: the scenario and the flags.
struct Plan {
    scenario: Scenario,
    phases: Vec<Resolved>,
    drain_limit: Duration,
    run_id: String,
}

impl Plan {
    fn from_args(args: &RunArgs) -> anyhow::Result<Plan> {
        let mut scenario = match (&args.scenario, args.rate, &args.duration) {
            (Some(path), _, _) => Scenario::load(path)?,
            (None, Some(rate), Some(duration)) => Scenario::constant(rate, duration)?,
            _ => bail!("give --scenario FILE, or --rate N --duration D"),
        };
        if let Some(ms) = args.kill_switch_bound_ms {
            scenario.kill_switch_bound_ms = ms;
        }
        if args.backlog && !args.spawn_serve {
            bail!("--backlog needs --spawn-serve (it restarts serve with its worker on)");
        }
        Ok(Plan {
            phases: scenario.resolved(args.compress)?,
            drain_limit: parse_duration(&args.drain_timeout)?,
            run_id: format!("{:08x}", rand::random::<u32>()),
            scenario,
        })
    }
}

/// serve (spawned or given), the fake downstreams, and how the harness
/// reaches them.
struct SystemUnderTest {
    fake: Arc<Fake>,
    fake_url: String,
    token: String,
    signer: Option<Arc<crate::sns::Signer>>,
    /// Environment of a spawned serve (signer, scenario, `--serve-env`).
    serve_env: Vec<(String, String)>,
    serve_bin: PathBuf,
    spawned: Option<Spawned>,
    /// The webhook base URL traffic is sent to.
    base: String,
    /// The store serve uses, for the checker and queue sampling.
    backend: Option<Backend>,
    client: reqwest::Client,
    /// For requests that must not reuse a connection.
    unpooled: reqwest::Client,
    /// serve's process, for CPU and memory.
    pid: Option<u32>,
    /// Requests a remote fake logged before this run (not ours).
    fake_requests_before: usize,
}

impl SystemUnderTest {
    async fn start(args: &RunArgs, plan: &Plan) -> anyhow::Result<SystemUnderTest> {
        let fake = Arc::new(fake_downstreams(args).await?);
        let token = webhook_token(args, &plan.run_id)?;
        let signer = sns_signer(args, &plan.scenario).await?;
        let serve_env = serve_env(args, &plan.scenario, signer.as_deref())?;
        let serve_bin = target::serve_bin(args.serve_bin.as_deref());
        let fake_url = fake.base_url().unwrap_or_default();
        let spawned = if args.spawn_serve {
            let mut serve_args = args.serve_args.clone();
            if args.backlog {
                serve_args.push("--ingress-only".to_owned());
            }
            let data_dir = args.data_dir.clone();
            let serve = target::spawn_serve(
                &serve_bin,
                data_dir,
                &token,
                &fake_url,
                &serve_env,
                &serve_args,
            );
            Some(serve.await?)
        } else {
            None
        };
        let base = match (&spawned, &args.target) {
            (Some(serve), _) => serve.base.clone(),
            (None, Some(url)) => url.trim_end_matches('/').to_owned(),
            (None, None) => bail!("give --target URL or --spawn-serve"),
        };
        let backend = open_backend(args, spawned.as_ref()).await?;
        let (client, unpooled) = http_clients(args.max_in_flight)?;
        wait_ready(&client, &base).await?;
        let pid = spawned.as_ref().map(|s| s.pid).or(args.serve_pid);
        // A remote fake may have served earlier runs: count only this run's
        // requests (its log is append-only until reset).
        let fake_requests_before = match &*fake {
            Fake::Remote { .. } => fake
                .requests()
                .await
                .context("reading the fake downstreams' request log")?
                .len(),
            _ => 0,
        };
        Ok(SystemUnderTest {
            fake,
            fake_url,
            token,
            signer,
            serve_env,
            serve_bin,
            spawned,
            base,
            backend,
            client,
            unpooled,
            pid,
            fake_requests_before,
        })
    }

    /// Backlog mode: the worker starts only now, on everything acked.
    async fn start_backlog_worker(
        &mut self,
        args: &RunArgs,
        baseline: &mut Baseline,
    ) -> anyhow::Result<()> {
        let Some(held) = self.spawned.take() else {
            return Ok(());
        };
        let worker = held
            .restart(
                &self.serve_bin,
                &self.token,
                &self.fake_url,
                &self.serve_env,
                &args.serve_args,
            )
            .await?;
        self.pid = Some(worker.pid);
        *baseline = Baseline::take(&self.client, Some(worker.pid), &worker.base).await;
        self.spawned = Some(worker);
        Ok(())
    }

    /// The base URL of the serve running now (`--backlog` restarted it).
    fn current_base(&self) -> &str {
        self.spawned
            .as_ref()
            .map_or(self.base.as_str(), |s| s.base.as_str())
    }
}

/// The fake downstreams: remote (`--fake`), in process (`--spawn-serve`),
/// or none.
async fn fake_downstreams(args: &RunArgs) -> anyhow::Result<Fake> {
    Ok(match (&args.fake, args.spawn_serve) {
        (Some(url), _) => Fake::Remote {
            base: url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        },
        (None, true) => Fake::start_in_process().await?,
        (None, false) => Fake::Absent,
    })
}

fn webhook_token(args: &RunArgs, run_id: &str) -> anyhow::Result<String> {
    Ok(match (&args.token, args.spawn_serve) {
        (Some(token), _) => token.clone(),
        (None, true) => format!("lt-{run_id}-{:016x}", rand::random::<u64>()),
        (None, false) => bail!("--token (or SWITCHYARD_WEBHOOK_TOKEN) is required with --target"),
    })
}

/// SES traffic: the harness is its own SNS; serve must trust its host.
async fn sns_signer(
    args: &RunArgs,
    scenario: &Scenario,
) -> anyhow::Result<Option<Arc<crate::sns::Signer>>> {
    if scenario.mix.ses <= 0.0 {
        return Ok(None);
    }
    let signer = crate::sns::Signer::start(&args.sns_cert_listen).await?;
    if !args.spawn_serve {
        let vars: Vec<String> = signer
            .serve_env()
            .iter()
            .map(|(k, v)| format!("{k}='{v}'"))
            .collect();
        eprintln!(
            "loadtest: mix.ses > 0: SES notifications are signed with the harness's certificate at {}; run serve with {} or they are refused (401)",
            signer.cert_url(),
            vars.join(" ")
        );
    }
    Ok(Some(Arc::new(signer)))
}

/// A spawned serve's environment: the signer's, the scenario's, then
/// `--serve-env KEY=VALUE`.
fn serve_env(
    args: &RunArgs,
    scenario: &Scenario,
    signer: Option<&crate::sns::Signer>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = signer.map(|s| s.serve_env()).unwrap_or_default();
    env.extend(
        scenario
            .serve_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for pair in &args.serve_env {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--serve-env {pair:?}: expected KEY=VALUE"))?;
        env.push((key.to_owned(), value.to_owned()));
    }
    Ok(env)
}

/// The store serve uses: `--aws-prefix`, else the (spawned serve's or
/// given) data dir; none turns the checker off.
async fn open_backend(
    args: &RunArgs,
    spawned: Option<&Spawned>,
) -> anyhow::Result<Option<Backend>> {
    let data_dir = spawned
        .map(|s| s.data_dir.clone())
        .or(args.data_dir.clone());
    let config = match (&args.aws_prefix, data_dir) {
        (Some(prefix), _) => BackendConfig::Aws(AwsSettings::new(prefix.clone())),
        (None, Some(dir)) => BackendConfig::Embedded(EmbeddedSettings::new(dir)),
        (None, None) => {
            eprintln!(
                "loadtest: no --data-dir / --aws-prefix: the invariant checker and queue sampling are off"
            );
            return Ok(None);
        }
    };
    let backend = Backend::open(&config)
        .await
        .context("opening the backend serve uses")?;
    Ok(Some(backend))
}

/// A pooled client for the traffic and an unpooled one.
fn http_clients(max_in_flight: usize) -> anyhow::Result<(reqwest::Client, reqwest::Client)> {
    let pooled = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_in_flight)
        .timeout(Duration::from_secs(30))
        .build()?;
    let unpooled = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok((pooled, unpooled))
}

/// serve's resource use and writer counters at the start of what is
/// measured.
#[derive(Debug, Clone)]
struct Baseline {
    process: Option<ProcSample>,
    writer: WriterSample,
}

impl Baseline {
    async fn take(client: &reqwest::Client, pid: Option<u32>, base: &str) -> Baseline {
        Baseline {
            process: pid.and_then(proc_sample),
            // (The counters appear with the first commit: none yet counts as zero.)
            writer: WriterSample::scrape(client, base).await.unwrap_or_default(),
        }
    }
}

/// The send window and its outcomes.
struct Sent {
    started_at: chrono::DateTime<chrono::Utc>,
    planned: u64,
    send_window: Duration,
    outcomes: Vec<Outcome>,
    baseline: Baseline,
}

/// What runs alongside the traffic until the drain is over: the queue
/// sampler and the scenario's faults.
struct Background {
    stop_sampling: Arc<AtomicBool>,
    queue_sampler: Option<JoinHandle<Vec<QueueSample>>>,
    faults: JoinHandle<(Vec<Applied>, Vec<Flipped>)>,
}

/// Send the scenario's traffic, with queue sampling and the scenario's
/// faults running alongside.
async fn send_traffic(
    args: &RunArgs,
    plan: &Plan,
    target: &SystemUnderTest,
) -> anyhow::Result<(Sent, Background)> {
    let scenario = &plan.scenario;
    let planned = send::planned(&plan.phases);
    let send_window = scenario.total_duration(args.compress)?;
    let start = Instant::now();
    let started_at = chrono::Utc::now();
    let baseline = Baseline::take(&target.client, target.pid, &target.base).await;
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let queue_sampler = target.backend.clone().map(|backend| {
        let every = Duration::from_millis(if send_window > Duration::from_secs(600) {
            5000
        } else {
            250
        });
        tokio::spawn(sample::queue_depth(
            backend,
            start,
            every,
            stop_sampling.clone(),
        ))
    });
    let faults = tokio::spawn(crate::faults::drive(
        scenario.clone(),
        args.compress,
        target.fake.clone(),
        target.backend.clone(),
        start,
    ));
    let live = Arc::new(Live::new());
    let bar = progress(args.quiet, planned, live.clone(), start);
    let mut generator = Generator::new(scenario, &plan.run_id, args.oversize_bytes);
    if let Some(signer) = &target.signer {
        generator = generator.with_signer(signer.clone());
    }
    let webhooks = Target::new(
        &target.base,
        target.token.clone(),
        args.token_header.clone(),
        target.client.clone(),
        target.unpooled.clone(),
    )?;
    let phases = plan.phases.clone();
    let outcomes = send::run(phases, generator, webhooks, start, args.max_in_flight, live).await;
    bar.abort();
    eprintln!();
    let sent = Sent {
        started_at,
        planned,
        send_window,
        outcomes,
        baseline,
    };
    let background = Background {
        stop_sampling,
        queue_sampler,
        faults,
    };
    Ok((sent, background))
}

/// After the send: the drain, the samples, the fake's log and the checker's
/// verdict.
struct Observed {
    drained: bool,
    drain: Duration,
    serve: Option<(u32, ProcSample, ProcSample)>,
    writer: Option<WriterSample>,
    queue: Vec<QueueSample>,
    applied: Vec<Applied>,
    flips: Vec<Flipped>,
    fake_log: Vec<LoggedRequest>,
    extra_violations: Vec<Violation>,
    checked: Option<Checked>,
}

/// Wait for the queue to drain, stop the samplers, then check.
async fn drain_and_collect(
    args: &RunArgs,
    plan: &Plan,
    target: &SystemUnderTest,
    sent: &Sent,
    background: Background,
    baseline: &Baseline,
) -> anyhow::Result<Observed> {
    let checking = !args.no_check;
    let drain_start = Instant::now();
    let drained = match &target.backend {
        Some(backend) if checking => checker::drain(backend, plan.drain_limit).await,
        _ => false,
    };
    let drain = drain_start.elapsed();
    let process_after = target.pid.and_then(proc_sample);
    let writer = WriterSample::scrape(&target.client, target.current_base())
        .await
        .map(|after| after.since(baseline.writer));
    background.stop_sampling.store(true, Ordering::Relaxed);
    let queue = match background.queue_sampler {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    if !background.faults.is_finished() {
        background.faults.abort();
    }
    let (applied, flips) = background.faults.await.unwrap_or_default();
    let mut fake_log = target.fake.requests().await.unwrap_or_default();
    fake_log.drain(..target.fake_requests_before.min(fake_log.len()));
    let mut extra_violations = Vec::new();
    if target.backend.is_some() && checking && !drained {
        extra_violations.push(Violation {
            invariant: "queue_drains",
            conversation: None,
            detail: format!("the queue did not drain within {:?}", plan.drain_limit),
        });
    }
    let checked = match &target.backend {
        Some(backend) if checking => Some(
            checker::check(
                backend,
                &sent.outcomes,
                sent.started_at,
                &flips,
                &fake_log,
                plan.scenario.kill_switch_bound_ms,
            )
            .await?,
        ),
        _ => None,
    };
    let serve = target
        .pid
        .zip(baseline.process)
        .zip(process_after)
        .map(|((pid, before), after)| (pid, before, after));
    Ok(Observed {
        drained,
        drain,
        serve,
        writer,
        queue,
        applied,
        flips,
        fake_log,
        extra_violations,
        checked,
    })
}

fn build_report(
    args: &RunArgs,
    plan: &Plan,
    target: &SystemUnderTest,
    sent: &Sent,
    observed: &Observed,
) -> report::Report {
    let report = report::build(Inputs {
        scenario: &plan.scenario,
        compress: args.compress,
        target: target.base.clone(),
        backend: target
            .backend
            .as_ref()
            .map(|b| b.description.clone())
            .unwrap_or_else(|| "unknown (not checked)".into()),
        started_at: sent.started_at.to_rfc3339(),
        planned: sent.planned,
        send_window: sent.send_window,
        outcomes: &sent.outcomes,
        checked: observed.checked.as_ref(),
        extra_violations: observed.extra_violations.clone(),
        drained: observed.drained,
        drain: observed.drain,
        fake_log: &observed.fake_log,
        flips: &observed.flips,
        applied: observed.applied.clone(),
        queue: observed.queue.clone(),
        serve: observed.serve,
        writer: observed.writer,
    });
    if args.backlog {
        report.with_backlog()
    } else {
        report
    }
}

/// The text summary (and the checker's dumps) on stdout; JSON and HTML
/// where asked.
fn write_outputs(
    args: &RunArgs,
    report: &report::Report,
    checked: Option<&Checked>,
) -> anyhow::Result<()> {
    print!("{}", report::text(report));
    for dump in checked.iter().flat_map(|c| &c.dumps) {
        println!("{dump}");
    }
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, crate::html::render(report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `/readyz` answers 200 within 30 s.
async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Ok(r) => bail!("{base}/readyz answered {}", r.status()),
            Err(e) => bail!("{base} unreachable: {e}"),
        }
    }
}

/// The live progress line: rate, p99, errors so far (hidden off a TTY).
fn progress(
    quiet: bool,
    planned: u64,
    live: Arc<Live>,
    start: Instant,
) -> tokio::task::JoinHandle<()> {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(planned)
    };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    tokio::spawn(async move {
        loop {
            let done = live.done.load(Ordering::Relaxed);
            let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-3);
            bar.set_position(done);
            bar.set_message(format!(
                "{rate:.0}/s  p99 {:.1} ms  errors {}",
                live.p99_ms(),
                live.errors.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
