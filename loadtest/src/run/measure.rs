//! Sending the traffic and measuring around it: serve's baseline, the
//! queue sampler and faults running alongside, the drain, the checker.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use downstream::fake::LoggedRequest;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Plan;
use super::setup::SystemUnderTest;
use crate::RunArgs;
use crate::checker::{self, Checked, Violation};
use crate::faults::{Applied, Flipped};
use crate::sample::{self, ProcSample, QueueSample, WriterSample, proc_sample};
use crate::send::{self, Live, Outcome, Target};
use crate::traffic::Generator;

/// serve's resource use and writer counters at the start of what is
/// measured.
#[derive(Debug, Clone)]
pub(super) struct Baseline {
    pub(super) process: Option<ProcSample>,
    pub(super) writer: WriterSample,
}

impl Baseline {
    pub(super) async fn take(client: &reqwest::Client, pid: Option<u32>, base: &str) -> Baseline {
        Baseline {
            process: pid.and_then(proc_sample),
            // (The counters appear with the first commit: none yet counts as zero.)
            writer: WriterSample::scrape(client, base).await.unwrap_or_default(),
        }
    }
}

/// The send window and its outcomes.
pub(super) struct Sent {
    pub(super) started_at: chrono::DateTime<chrono::Utc>,
    pub(super) planned: u64,
    pub(super) send_window: Duration,
    pub(super) outcomes: Vec<Outcome>,
    pub(super) baseline: Baseline,
}

/// What runs alongside the traffic until the drain is over: the queue
/// sampler and the scenario's faults.
pub(super) struct Background {
    stop_sampling: Arc<AtomicBool>,
    queue_sampler: Option<JoinHandle<Vec<QueueSample>>>,
    faults: JoinHandle<(Vec<Applied>, Vec<Flipped>)>,
}

/// Send the scenario's traffic, with queue sampling and the scenario's
/// faults running alongside.
pub(super) async fn send_traffic(
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
pub(super) struct Observed {
    pub(super) drained: bool,
    pub(super) drain: Duration,
    pub(super) serve: Option<(u32, ProcSample, ProcSample)>,
    pub(super) writer: Option<WriterSample>,
    pub(super) queue: Vec<QueueSample>,
    pub(super) applied: Vec<Applied>,
    pub(super) flips: Vec<Flipped>,
    pub(super) fake_log: Vec<LoggedRequest>,
    pub(super) extra_violations: Vec<Violation>,
    pub(super) checked: Option<Checked>,
}

/// Wait for the queue to drain, stop the samplers, then check.
pub(super) async fn drain_and_collect(
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
