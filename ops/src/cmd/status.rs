//! `switchyard status`: queue, DLQ, flags at a glance.
use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use ports::{FlagSet, Flags, QueueStats};
use serde_json::json;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: switchyard status --json")]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// A running `serve` to ask for its in-process state (breakers), via
    /// its `/metrics`. Skipped silently when nothing answers there.
    #[arg(
        long,
        env = "SWITCHYARD_SERVE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub serve_url: String,
    /// A conversation with unfinished actions whose last event is older than
    /// this many seconds counts as stuck (default: 3 visibility timeouts).
    #[arg(long, default_value_t = 90)]
    pub stuck_after: u64,
    /// Read at most this many conversations when looking for stuck ones.
    #[arg(long, default_value_t = 10_000)]
    pub scan_limit: usize,
}

/// A conversation whose processing looks stuck.
#[derive(Debug, serde::Serialize)]
pub struct Stuck {
    pub conversation: String,
    pub idle_seconds: i64,
    pub pending_actions: usize,
    pub last_error: Option<String>,
    /// Waiting on a paused downstream (its pending action says so), not
    /// stuck.
    pub held: bool,
}

/// Something paused (`pause.<downstream>` or `pause.worker`), with the
/// audited change that paused it.
#[derive(Debug, serde::Serialize)]
pub struct Paused {
    pub target: String,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub by: Option<String>,
    pub reason: Option<String>,
}

/// What is paused now, from the flags and their audit trail.
async fn paused(flags: &dyn ports::FlagStore, set: &FlagSet) -> anyhow::Result<Vec<Paused>> {
    let targets: Vec<&str> = set
        .values
        .iter()
        .filter(|(_, v)| v.as_str() == "on")
        .filter_map(|(k, _)| k.strip_prefix("pause."))
        .collect();
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let history = flags
        .history(1000)
        .await
        .context("reading the flag history")?;
    Ok(targets
        .into_iter()
        .map(|target| {
            let name = format!("pause.{target}");
            // History is newest first: the last change that paused it.
            let change = history.iter().find(|e| e.name == name && e.new == "on");
            Paused {
                target: target.to_owned(),
                since: change.map(|e| e.at),
                by: change.map(|e| e.actor.clone()),
                reason: change.map(|e| e.reason.clone()),
            }
        })
        .collect())
}

/// Conversations with requested/planned/failed-but-retryable actions and no
/// event for `older_than`: their message is being retried (or lost its
/// worker); and those whose pending action waits on a paused downstream
/// (`held`), however long. Reads projections only; `scanned` tells how
/// many.
pub async fn stuck_conversations(
    store: &dyn ports::EventStore,
    older_than: chrono::Duration,
    scan_limit: usize,
) -> anyhow::Result<(Vec<Stuck>, usize)> {
    let now = chrono::Utc::now();
    let mut stuck = Vec::new();
    let mut scanned = 0;
    let mut streams = conversation::StreamPager::new(store);
    while scanned < scan_limit {
        let Some(page) = streams
            .next_page(500.min(scan_limit - scanned))
            .await
            .context("listing streams")?
        else {
            break;
        };
        for name in page {
            scanned += 1;
            let c = match conversation::stored_state(store, &name)
                .await
                .context("reading a projection")?
            {
                conversation::StoredState::Current(c) => *c,
                conversation::StoredState::Missing => continue,
                // Folded by another build: what the log says now.
                conversation::StoredState::Stale { .. } => conversation::rebuild(store, &name)
                    .await
                    .with_context(|| format!("replaying {name}"))?,
            };
            let idle = c
                .last_event_at
                .map_or(chrono::Duration::zero(), |at| now - at);
            let last_error = c.pending.values().find_map(|p| p.last_error.clone());
            let held = last_error
                .as_deref()
                .is_some_and(|e| e.starts_with(conversation::HELD_PREFIX));
            if !c.pending.is_empty() && (held || idle > older_than) {
                stuck.push(Stuck {
                    conversation: name,
                    idle_seconds: idle.num_seconds(),
                    pending_actions: c.pending.len(),
                    last_error,
                    held,
                });
            }
        }
    }
    Ok((stuck, scanned))
}

/// Breaker states from a running serve's Prometheus text:
/// `downstream_breaker_state{downstream="richpanel"} 0|1|2`.
pub async fn breaker_states(serve_url: &str) -> Option<Vec<(String, &'static str)>> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .ok()?;
    let text = client
        .get(format!("{}/metrics", serve_url.trim_end_matches('/')))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(parse_breakers(&text))
}

fn parse_breakers(text: &str) -> Vec<(String, &'static str)> {
    let series = format!("{}{{", downstream::metrics::BREAKER_STATE);
    text.lines()
        .filter_map(|l| l.strip_prefix(series.as_str()))
        .filter_map(|l| {
            let name = l
                .split("downstream=\"")
                .nth(1)?
                .split('"')
                .next()?
                .to_owned();
            let state = match l.rsplit(' ').next()?.trim() {
                "0" => "closed",
                "1" => "half_open",
                "2" => "open",
                _ => "unknown",
            };
            Some((name, state))
        })
        .collect()
}

pub async fn run(args: Args, backend_args: BackendArgs) -> anyhow::Result<ExitCode> {
    let report = Report::gather(&args, &backend_args).await?;
    if args.json {
        report.print_json(&args);
    } else {
        report.print_text(&args);
    }
    Ok(ExitCode::SUCCESS)
}

/// Everything `status` shows, read once.
struct Report {
    backend: String,
    queue: QueueStats,
    flag_set: FlagSet,
    flags: Flags,
    breakers: Option<Vec<(String, &'static str)>>,
    stuck: Vec<Stuck>,
    /// How many conversations were read looking for stuck ones.
    scanned: usize,
    paused: Vec<Paused>,
}

impl Report {
    async fn gather(args: &Args, backend_args: &BackendArgs) -> anyhow::Result<Report> {
        let backend = backend_args.open().await?;
        let queue = backend.queue.stats().await.context("reading queue stats")?;
        let flag_set = backend.flags.get_all().await.context("reading flags")?;
        let flags = Flags::from_set(&flag_set);
        let breakers = breaker_states(&args.serve_url).await;
        let stuck_after =
            chrono::Duration::seconds(i64::try_from(args.stuck_after).unwrap_or(i64::MAX / 1000));
        let (stuck, scanned) =
            stuck_conversations(backend.events.as_ref(), stuck_after, args.scan_limit).await?;
        let paused = paused(backend.flags.as_ref(), &flag_set).await?;
        Ok(Report {
            paused,
            backend: backend.description,
            queue,
            flag_set,
            flags,
            breakers,
            stuck,
            scanned,
        })
    }

    fn oldest_age_seconds(&self) -> Option<f64> {
        self.queue.oldest_age.map(|d| d.as_secs_f64())
    }

    fn print_json(&self, args: &Args) {
        let (queue, flags, set) = (&self.queue, &self.flags, &self.flag_set);
        let breakers = self.breakers.as_ref().map(|b| {
            b.iter()
                .map(|(n, s)| (n.clone(), *s))
                .collect::<BTreeMap<_, _>>()
        });
        let (held, stuck): (Vec<&Stuck>, Vec<&Stuck>) = self.stuck.iter().partition(|s| s.held);
        super::print_json(&json!({
            "backend": self.backend,
            "paused": self.paused,
            "held": {"conversations": held},
            "queue": {"visible": queue.visible, "in_flight": queue.in_flight, "dlq": queue.dlq,
                      "oldest_age_seconds": self.oldest_age_seconds()},
            "flags": {"version": set.version, "kill_switch": flags.kill_switch.as_str(),
                      "shadow": flags.shadow, "safe_mode": flags.safe_mode, "values": set.values},
            "stuck": {"after_seconds": args.stuck_after, "scanned": self.scanned,
                      "conversations": stuck},
            "breakers": breakers,
        }));
    }

    fn print_text(&self, args: &Args) {
        let (queue, flags) = (&self.queue, &self.flags);
        out!("backend      {}", self.backend);
        out!(
            "queue        {} waiting, {} in flight",
            queue.visible,
            queue.in_flight
        );
        out!(
            "oldest       {}",
            self.oldest_age_seconds()
                .map_or("-".to_owned(), |s| format!("{s:.1} s"))
        );
        out!(
            "dlq          {}{}",
            queue.dlq,
            if queue.dlq > 0 {
                "  (see: switchyard dlq list)"
            } else {
                ""
            }
        );
        out!("kill-switch  {}", flags.kill_switch.as_str());
        out!("shadow       {}", super::on_off(flags.shadow));
        out!("safe-mode    {}", super::on_off(flags.safe_mode));
        self.print_paused();
        self.print_stuck(args.stuck_after);
        self.print_breakers(&args.serve_url);
    }

    fn print_paused(&self) {
        if self.paused.is_empty() {
            out!("paused       nothing");
            return;
        }
        let now = chrono::Utc::now();
        for p in &self.paused {
            let since = p.since.map_or("(since unknown)".to_owned(), |at| {
                format!(
                    "for {} s (since {})",
                    (now - at).num_seconds(),
                    at.format("%Y-%m-%dT%H:%M:%SZ")
                )
            });
            out!(
                "paused       {} {since} by {}: {}",
                p.target,
                p.by.as_deref().unwrap_or("?"),
                p.reason.as_deref().unwrap_or("?")
            );
        }
        let held: Vec<&Stuck> = self.stuck.iter().filter(|s| s.held).collect();
        if !held.is_empty() {
            out!(
                "held         {} conversation(s) waiting for a paused downstream (resume: switchyard flags set pause <downstream> off):",
                held.len()
            );
            for h in held {
                out!("  {}  held {} s", h.conversation, h.idle_seconds);
            }
        }
    }

    fn print_stuck(&self, stuck_after: u64) {
        let stuck: Vec<&Stuck> = self.stuck.iter().filter(|s| !s.held).collect();
        if stuck.is_empty() {
            out!(
                "stuck        none (of {} conversations; idle > {stuck_after} s with unfinished actions)",
                self.scanned
            );
            return;
        }
        out!(
            "stuck        {} conversation(s) idle > {stuck_after} s with unfinished actions:",
            stuck.len()
        );
        for stuck in stuck {
            out!(
                "  {}  idle {} s, {} pending{}  (switchyard inspect {})",
                stuck.conversation,
                stuck.idle_seconds,
                stuck.pending_actions,
                stuck
                    .last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default(),
                stuck.conversation
            );
        }
    }

    fn print_breakers(&self, serve_url: &str) {
        match &self.breakers {
            Some(b) if !b.is_empty() => {
                let list: Vec<String> = b.iter().map(|(n, s)| format!("{n} {s}")).collect();
                out!("breakers     {}", list.join(", "));
            }
            Some(_) => out!("breakers     (serve at {serve_url} reports none yet)"),
            None => out!("breakers     (no serve answering at {serve_url})"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn breaker_states_are_read_from_prometheus_text() {
        let text = "# TYPE downstream_breaker_state gauge\ndownstream_breaker_state{downstream=\"richpanel\"} 2\ndownstream_breaker_state{downstream=\"openai\"} 0\n";
        assert_eq!(
            super::parse_breakers(text),
            vec![
                ("richpanel".to_string(), "open"),
                ("openai".to_string(), "closed")
            ]
        );
    }
}
