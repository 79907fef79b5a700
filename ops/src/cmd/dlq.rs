//! `switchyard dlq`: what was dead-lettered and why; redrive it back, all
//! of it, one letter, or what a filter selects.
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use ports::{DeadLetter, DlqFilter, Redrive};
use serde_json::json;

use crate::backend_args::BackendArgs;

/// Most dead letters a listing (or a dry run) shows.
const MAX_LISTED: usize = 10_000;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  switchyard dlq list
  switchyard dlq list --since 2h --reason '^downstream rejected'
  switchyard dlq show <id>
  switchyard dlq redrive <id>
  switchyard dlq redrive --all --yes
  switchyard dlq redrive --source richpanel --reason '429|5[0-9][0-9]' --since 2026-12-01T14:00:00Z --until 2026-12-01T15:00:00Z --dry-run
  switchyard dlq redrive --group 12345_acme_678 --yes")]
pub struct Args {
    #[command(subcommand)]
    pub action: DlqAction,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum DlqAction {
    /// List dead letters with the reason each was dead-lettered, oldest
    /// first; the filters select which.
    ///
    /// Example: switchyard dlq list --source ses --since 1d --limit 20
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show one dead letter in full.
    ///
    /// Example: switchyard dlq show 0190f3c2-...
    Show { id: String },
    /// Put dead letters back on the queue, keeping group, dedup id and
    /// order: one by id, every one (--all), or those the filters select.
    ///
    /// Example: switchyard dlq redrive --reason 'timed out' --since 2h --dry-run
    Redrive {
        /// One dead letter's id.
        #[arg(conflicts_with_all = ["all", "dry_run"])]
        id: Option<String>,
        /// Every dead letter (the filters narrow it).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print exactly which dead letters would move, and move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Confirm a bulk redrive.
        #[arg(long)]
        yes: bool,
    },
}

/// The filters `list` and `redrive` share; each one given must match.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only letters first sent (acknowledged) at or after this: an RFC 3339
    /// time, or an age such as 2h, 7d, 90m.
    #[arg(long, value_parser = parse_instant)]
    since: Option<DateTime<Utc>>,
    /// Only letters first sent before this (same forms as --since).
    #[arg(long, value_parser = parse_instant)]
    until: Option<DateTime<Utc>>,
    /// Only letters whose reason matches this regular expression.
    #[arg(long, value_parser = parse_regex)]
    reason: Option<regex::Regex>,
    /// Only letters from this ingress route.
    #[arg(long, value_parser = ["richpanel", "email", "ses"])]
    source: Option<String>,
    /// Only letters of this conversation's message group.
    #[arg(long)]
    group: Option<String>,
}

impl FilterArgs {
    fn filter(self) -> DlqFilter {
        DlqFilter {
            since: self.since,
            until: self.until,
            reason: self.reason,
            source: self.source,
            group: self.group,
        }
    }
}

/// An RFC 3339 instant, or an age (`humantime` units: 90s, 30m, 2h, 7d)
/// counted back from now.
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let age = humantime::parse_duration(s).map_err(|e| {
        format!("{s:?} is neither an RFC 3339 time (2026-12-01T14:00:00Z) nor an age such as 2h or 7d: {e}")
    })?;
    let age = chrono::Duration::from_std(age).map_err(|_| format!("{s:?} is too long ago"))?;
    Utc::now()
        .checked_sub_signed(age)
        .ok_or_else(|| format!("{s:?} is too long ago"))
}

fn parse_regex(s: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(s).map_err(|e| format!("not a regular expression: {e}"))
}

pub async fn run(args: Args, backend_args: BackendArgs) -> anyhow::Result<ExitCode> {
    let backend = backend_args.open().await?;
    let queue = &backend.queue;
    match args.action {
        DlqAction::List { limit, filter } => {
            let letters = queue
                .dlq_list(&filter.filter(), limit.min(MAX_LISTED))
                .await
                .context("listing the DLQ")?;
            print_letters(&letters, args.json, "no dead letter matches");
        }
        DlqAction::Show { id } => {
            let letters = queue
                .dlq_list(&DlqFilter::default(), MAX_LISTED)
                .await
                .context("listing the DLQ")?;
            let Some(letter) = letters.into_iter().find(|d| d.id == id) else {
                eprintln!("no dead letter {id:?}");
                return Ok(ExitCode::from(3));
            };
            let body: serde_json::Value =
                serde_json::from_str(&letter.body).unwrap_or(json!(letter.body));
            super::print_json(&json!({
                "id": letter.id, "group": letter.group_id, "dedup_id": letter.dedup_id,
                "reason": letter.reason, "receive_count": letter.receive_count,
                "sent_at": letter.sent_at, "attributes": letter.attributes, "body": body,
            }));
        }
        DlqAction::Redrive {
            id,
            all,
            filter,
            dry_run,
            yes,
        } => {
            let filter = filter.filter();
            let which = match id {
                Some(id) if filter.is_everything() => Redrive::One(id),
                Some(_) => anyhow::bail!("give a dead letter id or filters, not both"),
                None if !all && filter.is_everything() => {
                    anyhow::bail!("give a dead letter id, --all, or filters (see --help)")
                }
                None if dry_run => {
                    let letters = queue
                        .dlq_list(&filter, MAX_LISTED)
                        .await
                        .context("listing the DLQ")?;
                    print_letters(&letters, args.json, "dry run: nothing would move");
                    if !args.json && !letters.is_empty() {
                        out!("dry run: {} message(s) would move", letters.len());
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                None if !yes => {
                    eprintln!(
                        "a bulk redrive moves every matching dead letter back to the queue; \
                         check with --dry-run, then add --yes to confirm"
                    );
                    return Ok(ExitCode::from(2));
                }
                None => Redrive::Matching(filter),
            };
            let redriven = queue.dlq_redrive(which).await.context("redriving")?;
            if args.json {
                super::print_json(&json!({ "redriven": redriven }));
            } else {
                out!("redrove {redriven} message(s)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_letters(letters: &[DeadLetter], as_json: bool, when_none: &str) {
    if as_json {
        let rows: Vec<_> = letters
            .iter()
            .map(|d| {
                json!({"id": d.id, "group": d.group_id, "dedup_id": d.dedup_id, "reason": d.reason,
                       "source": d.attributes.get(ports::ATTR_SOURCE), "receive_count": d.receive_count,
                       "sent_at": d.sent_at})
            })
            .collect();
        super::print_json(&json!(rows));
    } else if letters.is_empty() {
        out!("{when_none}");
    } else {
        for d in letters {
            out!(
                "{}  group {}  sent {}  source {}  received {}x  reason: {}",
                d.id,
                d.group_id,
                d.sent_at.format("%Y-%m-%dT%H:%M:%SZ"),
                d.attributes
                    .get(ports::ATTR_SOURCE)
                    .map_or("-", String::as_str),
                d.receive_count,
                d.reason
            );
        }
    }
}
