//! `switchyard status`: queue, DLQ, flags at a glance.
use std::process::ExitCode;

use anyhow::Context;
use ports::Flags;
use serde_json::json;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: switchyard status --json")]
pub struct Args {
    #[command(flatten)]
    pub backend: BackendArgs,
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
}

/// Conversations with requested/planned/failed-but-retryable actions and no
/// event for `older_than`: their message is being retried (or lost its
/// worker). Reads projections only; `scanned` tells how many.
pub async fn stuck_conversations(
    store: &dyn ports::EventStore,
    older_than: chrono::Duration,
    scan_limit: usize,
) -> anyhow::Result<(Vec<Stuck>, usize)> {
    let now = chrono::Utc::now();
    let mut stuck = Vec::new();
    let mut scanned = 0;
    let mut after: Option<String> = None;
    while scanned < scan_limit {
        let page = store
            .list_streams(after.as_deref(), 500.min(scan_limit - scanned))
            .await
            .context("listing streams")?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        for name in page {
            scanned += 1;
            let Some(p) = store
                .projection(&name)
                .await
                .context("reading a projection")?
            else {
                continue;
            };
            let Ok(c) = serde_json::from_str::<conversation::Conversation>(&p.state) else {
                continue;
            };
            let idle = c
                .last_event_at
                .map_or(chrono::Duration::zero(), |at| now - at);
            if !c.pending.is_empty() && idle > older_than {
                stuck.push(Stuck {
                    conversation: name,
                    idle_seconds: idle.num_seconds(),
                    pending_actions: c.pending.len(),
                    last_error: c.pending.values().find_map(|p| p.last_error.clone()),
                });
            }
        }
        after = Some(last);
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
    text.lines()
        .filter_map(|l| l.strip_prefix("downstream_breaker_state{"))
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

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let backend = args.backend.open().await?;
    let stats = backend.queue.stats().await.context("reading queue stats")?;
    let set = backend.flags.get_all().await.context("reading flags")?;
    let flags = Flags::from_set(&set);
    let oldest = stats.oldest_age.map(|d| d.as_secs_f64());
    let breakers = breaker_states(&args.serve_url).await;
    let stuck_after =
        chrono::Duration::seconds(i64::try_from(args.stuck_after).unwrap_or(i64::MAX / 1000));
    let (stuck, scanned) =
        stuck_conversations(backend.events.as_ref(), stuck_after, args.scan_limit).await?;
    if args.json {
        super::print_json(&json!({
            "backend": backend.description,
            "queue": {"visible": stats.visible, "in_flight": stats.in_flight, "dlq": stats.dlq,
                      "oldest_age_seconds": oldest},
            "flags": {"version": set.version, "kill_switch": flags.kill_switch.as_str(),
                      "shadow": flags.shadow, "safe_mode": flags.safe_mode, "values": set.values},
            "stuck": {"after_seconds": args.stuck_after, "scanned": scanned, "conversations": stuck},
            "breakers": breakers.as_ref().map(|b| b.iter().map(|(n, s)| (n.clone(), *s)).collect::<std::collections::BTreeMap<_, _>>()),
        }));
    } else {
        out!("backend      {}", backend.description);
        out!(
            "queue        {} waiting, {} in flight",
            stats.visible,
            stats.in_flight
        );
        out!(
            "oldest       {}",
            oldest.map_or("-".to_owned(), |s| format!("{s:.1} s"))
        );
        out!(
            "dlq          {}{}",
            stats.dlq,
            if stats.dlq > 0 {
                "  (see: switchyard dlq list)"
            } else {
                ""
            }
        );
        out!("kill-switch  {}", flags.kill_switch.as_str());
        out!("shadow       {}", if flags.shadow { "on" } else { "off" });
        out!(
            "safe-mode    {}",
            if flags.safe_mode { "on" } else { "off" }
        );
        if stuck.is_empty() {
            out!(
                "stuck        none (of {scanned} conversations; idle > {} s with unfinished actions)",
                args.stuck_after
            );
        } else {
            out!(
                "stuck        {} conversation(s) idle > {} s with unfinished actions:",
                stuck.len(),
                args.stuck_after
            );
            for s in &stuck {
                out!(
                    "  {}  idle {} s, {} pending{}  (switchyard inspect {})",
                    s.conversation,
                    s.idle_seconds,
                    s.pending_actions,
                    s.last_error
                        .as_deref()
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default(),
                    s.conversation
                );
            }
        }
        match &breakers {
            Some(b) if !b.is_empty() => {
                let list: Vec<String> = b.iter().map(|(n, s)| format!("{n} {s}")).collect();
                out!("breakers     {}", list.join(", "));
            }
            Some(_) => out!(
                "breakers     (serve at {} reports none yet)",
                args.serve_url
            ),
            None => out!("breakers     (no serve answering at {})", args.serve_url),
        }
    }
    Ok(ExitCode::SUCCESS)
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
