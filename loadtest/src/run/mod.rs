//! One `loadtest run`: set up the target (`setup.rs`), send and measure
//! (`measure.rs`), drain, check, report.
use std::time::Duration;

use anyhow::{Context, bail};

use crate::RunArgs;
use crate::checker::Checked;
use crate::report::{self, Inputs};
use crate::scenario::{Resolved, Scenario, parse_duration};

mod measure;
mod setup;

use measure::{Baseline, Observed, Sent, drain_and_collect, send_traffic};
use setup::SystemUnderTest;

/// Returns Ok(true) when every invariant held.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let plan = Plan::from_args(&args)?;
    let mut target = SystemUnderTest::start(&args, &plan).await?;
    let (sent, background) = send_traffic(&args, &plan, &target).await?;
    let mut baseline = sent.baseline.clone();
    if args.backlog && target.start_backlog_worker(&args).await? {
        // Measure the worker that drains the backlog, from its start.
        baseline = Baseline::take(&target.client, target.pid, target.current_base()).await;
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
