//! One `loadtest run`: set up the target, send, drain, check, report.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use ports::{AwsSettings, Backend, BackendConfig, EmbeddedSettings};
use tokio::time::Instant;

use crate::RunArgs;
use crate::checker::{self, Violation};
use crate::report::{self, Inputs};
use crate::sample::{self, WriterSample, proc_sample};
use crate::scenario::{Scenario, parse_duration};
use crate::send::{self, Live, Target};
use crate::target::{self, Fake};
use crate::traffic::Generator;

/// Returns Ok(true) when every invariant held.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let mut scenario = match (&args.scenario, args.rate, &args.duration) {
        (Some(path), _, _) => Scenario::load(path)?,
        (None, Some(rate), Some(d)) => Scenario::constant(rate, d)?,
        _ => bail!("give --scenario FILE, or --rate N --duration D"),
    };
    if let Some(ms) = args.kill_switch_bound_ms {
        scenario.kill_switch_bound_ms = ms;
    }
    let phases = scenario.resolved(args.compress)?;
    let drain_limit = parse_duration(&args.drain_timeout)?;
    let run_id = format!("{:08x}", rand::random::<u32>());

    // Fake downstreams and the system under test.
    let fake = Arc::new(match (&args.fake, args.spawn_serve) {
        (Some(url), _) => Fake::Remote {
            base: url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        },
        (None, true) => Fake::start_in_process().await?,
        (None, false) => Fake::Absent,
    });
    let token = match (&args.token, args.spawn_serve) {
        (Some(t), _) => t.clone(),
        (None, true) => format!("lt-{run_id}-{:016x}", rand::random::<u64>()),
        (None, false) => bail!("--token (or SWITCHYARD_WEBHOOK_TOKEN) is required with --target"),
    };
    // SES traffic: the harness is its own SNS; serve must trust its host.
    let signer = if scenario.mix.ses > 0.0 {
        Some(Arc::new(
            crate::sns::Signer::start(&args.sns_cert_listen).await?,
        ))
    } else {
        None
    };
    let mut env: Vec<(String, String)> = signer.as_ref().map(|s| s.serve_env()).unwrap_or_default();
    if let Some(s) = signer.as_ref().filter(|_| !args.spawn_serve) {
        let vars: Vec<String> = s
            .serve_env()
            .iter()
            .map(|(k, v)| format!("{k}='{v}'"))
            .collect();
        eprintln!(
            "loadtest: mix.ses > 0: SES notifications are signed with the harness's certificate at {}; run serve with {} or they are refused (401)",
            s.cert_url(),
            vars.join(" ")
        );
    }
    env.extend(
        scenario
            .serve_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for kv in &args.serve_env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--serve-env {kv:?}: expected KEY=VALUE"))?;
        env.push((k.to_owned(), v.to_owned()));
    }
    if args.backlog && !args.spawn_serve {
        bail!("--backlog needs --spawn-serve (it restarts serve with its worker on)");
    }
    let bin = target::serve_bin(args.serve_bin.as_deref());
    let fake_url = fake.base_url().unwrap_or_default();
    let mut spawned = if args.spawn_serve {
        let mut serve_args = args.serve_args.clone();
        if args.backlog {
            serve_args.push("--ingress-only".to_owned());
        }
        Some(
            target::spawn_serve(
                &bin,
                args.data_dir.clone(),
                &token,
                &fake_url,
                &env,
                &serve_args,
            )
            .await?,
        )
    } else {
        None
    };
    let base = match (&spawned, &args.target) {
        (Some(s), _) => s.base.clone(),
        (None, Some(t)) => t.trim_end_matches('/').to_owned(),
        (None, None) => bail!("give --target URL or --spawn-serve"),
    };
    let backend_cfg = match (
        &args.aws_prefix,
        spawned
            .as_ref()
            .map(|s| s.data_dir.clone())
            .or(args.data_dir.clone()),
    ) {
        (Some(prefix), _) => Some(BackendConfig::Aws(AwsSettings::new(prefix.clone()))),
        (None, Some(dir)) => Some(BackendConfig::Embedded(EmbeddedSettings::new(dir))),
        (None, None) => None,
    };
    let backend = match &backend_cfg {
        Some(c) => Some(
            Backend::open(c)
                .await
                .context("opening the backend serve uses")?,
        ),
        None => {
            eprintln!(
                "loadtest: no --data-dir / --aws-prefix: the invariant checker and queue sampling are off"
            );
            None
        }
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.max_in_flight)
        .timeout(Duration::from_secs(30))
        .build()?;
    let unpooled = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_ready(&client, &base).await?;
    let mut pid = spawned.as_ref().map(|s| s.pid).or(args.serve_pid);

    // A remote fake may have served earlier runs: count only this run's
    // requests (its log is append-only until reset).
    let fake_skip = match &*fake {
        Fake::Remote { .. } => fake
            .requests()
            .await
            .context("reading the fake downstreams' request log")?
            .len(),
        _ => 0,
    };

    // Go.
    let planned = send::planned(&phases);
    let total = scenario.total_duration(args.compress)?;
    let start = Instant::now();
    let start_utc = chrono::Utc::now();
    let mut proc_before = pid.and_then(proc_sample);
    let scraper = client.clone();
    // (The counters appear with the first commit: none yet counts as zero.)
    let mut writer_before = WriterSample::scrape(&scraper, &base)
        .await
        .unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = backend.clone().map(|b| {
        let every = Duration::from_millis(if total > Duration::from_secs(600) {
            5000
        } else {
            250
        });
        tokio::spawn(sample::queue_depth(b, start, every, stop.clone()))
    });
    let faults = tokio::spawn(crate::faults::drive(
        scenario.clone(),
        args.compress,
        fake.clone(),
        backend.clone(),
        start,
    ));
    let live = Arc::new(Live::new());
    let bar = progress(args.quiet, planned, live.clone(), start);
    let mut generator = Generator::new(&scenario, &run_id, args.oversize_bytes);
    if let Some(s) = &signer {
        generator = generator.with_signer(s.clone());
    }
    let target = Target::new(
        &base,
        token.clone(),
        args.token_header.clone(),
        client,
        unpooled,
    )?;
    let outcomes = send::run(phases, generator, target, start, args.max_in_flight, live).await;
    bar.abort();
    eprintln!();

    // Backlog mode: the worker starts only now, on everything acked.
    if args.backlog
        && let Some(held) = spawned.take()
    {
        let worker = held
            .restart(&bin, &token, &fake_url, &env, &args.serve_args)
            .await?;
        pid = Some(worker.pid);
        proc_before = proc_sample(worker.pid);
        writer_before = WriterSample::scrape(&scraper, &worker.base)
            .await
            .unwrap_or_default();
        spawned = Some(worker);
    }

    // Drain, then check.
    let drain_start = Instant::now();
    let drained = match &backend {
        Some(b) if !args.no_check => checker::drain(b, drain_limit).await,
        _ => false,
    };
    let drain = drain_start.elapsed();
    let proc_after = pid.and_then(proc_sample);
    // (--backlog restarted serve: ask the one running now.)
    let now_base = spawned.as_ref().map_or(base.as_str(), |s| s.base.as_str());
    let writer = WriterSample::scrape(&scraper, now_base)
        .await
        .map(|after| after.since(writer_before));
    stop.store(true, Ordering::Relaxed);
    let queue = match sampler {
        Some(t) => t.await.unwrap_or_default(),
        None => Vec::new(),
    };
    if !faults.is_finished() {
        faults.abort();
    }
    let (applied, flips) = faults.await.unwrap_or_default();
    let mut fake_log = fake.requests().await.unwrap_or_default();
    fake_log.drain(..fake_skip.min(fake_log.len()));
    let mut extra = Vec::new();
    if backend.is_some() && !args.no_check && !drained {
        extra.push(Violation {
            invariant: "queue_drains",
            conversation: None,
            detail: format!("the queue did not drain within {drain_limit:?}"),
        });
    }
    let checked = match (&backend, args.no_check) {
        (Some(b), false) => Some(
            checker::check(
                b,
                &outcomes,
                start_utc,
                &flips,
                &fake_log,
                scenario.kill_switch_bound_ms,
            )
            .await?,
        ),
        _ => None,
    };
    let mut report = report::build(Inputs {
        scenario: &scenario,
        compress: args.compress,
        target: base,
        backend: backend
            .as_ref()
            .map(|b| b.description.clone())
            .unwrap_or_else(|| "unknown (not checked)".into()),
        started_at: start_utc.to_rfc3339(),
        planned,
        send_window: total,
        outcomes: &outcomes,
        checked: checked.as_ref(),
        extra_violations: extra,
        drained,
        drain,
        fake_log: &fake_log,
        flips: &flips,
        applied,
        queue,
        serve: pid
            .zip(proc_before)
            .zip(proc_after)
            .map(|((p, b), a)| (p, b, a)),
        writer,
    });
    if args.backlog {
        report = report.with_backlog();
    }
    print!("{}", report::text(&report));
    if let Some(c) = &checked {
        for d in &c.dumps {
            println!("{d}");
        }
    }
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, crate::html::render(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(s) = spawned {
        s.stop(Duration::from_secs(10)).await;
    }
    Ok(report.violations.is_empty())
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
