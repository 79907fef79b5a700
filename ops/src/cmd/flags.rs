//! `switchyard flags`: show, set (audited) and the audit history.
use std::process::ExitCode;

use anyhow::Context;
use ports::{FlagStore, Flags};
use serde_json::json;

use crate::backend_args::BackendArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  switchyard flags
  switchyard flags set kill-switch all_writes --reason \"replies look wrong\"
  switchyard flags set shadow on --reason \"testing new rules\"
  switchyard flags set pause richpanel on --reason \"Richpanel maintenance\"   # holds, sends later
  switchyard flags set pause worker on --reason \"DB migration\"               # stops receiving
  switchyard flags history")]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Show every flag and its value (the default).
    ///
    /// Example: switchyard flags show --json
    Show,
    /// Change one flag; writes an audit entry (who, when, why, old → new).
    ///
    /// Names and values: kill-switch off|auto_replies|all_writes; shadow on|off;
    /// safe-mode on|off; channel <name> on|off; template <id> on|off;
    /// pause <downstream>|worker on|off. A pause defers: conversations
    /// that need the downstream wait, and go on in order once it is off;
    /// `pause worker` stops the worker receiving (the ingress keeps
    /// acknowledging). The kill switch suppresses for good.
    ///
    /// Example: switchyard flags set kill-switch all_writes --reason "incident 42"
    Set {
        /// Flag name: kill-switch, shadow, safe-mode, channel, template, pause.
        name: String,
        /// The value, or for channel/template/pause the key then the value
        /// (e.g. `channel email off`).
        #[arg(num_args = 1..=2, required = true)]
        values: Vec<String>,
        /// Why (required: it goes into the audit trail).
        #[arg(long)]
        reason: String,
        /// Who (default: $SWITCHYARD_ACTOR, else the OS user).
        #[arg(long, env = "SWITCHYARD_ACTOR")]
        actor: Option<String>,
    },
    /// The audit trail, newest first.
    ///
    /// Example: switchyard flags history --limit 20
    History {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `channel email off` → (`channel.email`, `off`); `shadow on` → as is.
pub fn flag_name_value(name: &str, values: &[String]) -> anyhow::Result<(String, String)> {
    match (name, values) {
        ("channel" | "template" | "pause", [key, value]) => {
            Ok((format!("{name}.{key}"), value.clone()))
        }
        ("channel" | "template" | "pause", _) => {
            anyhow::bail!("flag {name} needs a key and a value, e.g. `{name} <key> on`")
        }
        (_, [value]) => Ok((name.to_owned(), value.clone())),
        _ => anyhow::bail!("flag {name} takes one value"),
    }
}

pub(crate) fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

pub async fn run(args: Args, backend_args: BackendArgs) -> anyhow::Result<ExitCode> {
    let backend = backend_args.open().await?;
    let flags = backend.flags.as_ref();
    match args.action.unwrap_or(Action::Show) {
        Action::Show => show(flags, args.json).await?,
        Action::Set {
            name,
            values,
            reason,
            actor: who,
        } => set(flags, &name, &values, &reason, actor(who), args.json).await?,
        Action::History { limit } => history(flags, limit, args.json).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(flags: &dyn FlagStore, json: bool) -> anyhow::Result<()> {
    let set = flags.get_all().await.context("reading flags")?;
    let flags = Flags::from_set(&set);
    if json {
        super::print_json(&json!({
            "version": set.version,
            "kill_switch": flags.kill_switch.as_str(),
            "shadow": flags.shadow,
            "safe_mode": flags.safe_mode,
            "values": set.values,
        }));
        return Ok(());
    }
    out!("kill-switch  {}", flags.kill_switch.as_str());
    out!("shadow       {}", super::on_off(flags.shadow));
    out!("safe-mode    {}", super::on_off(flags.safe_mode));
    // Keyed flags: `channel.email`, `template.x`, `pause.richpanel`.
    for (name, value) in set.values.iter().filter(|(name, _)| name.contains('.')) {
        out!("{name:<12} {value}");
    }
    out!("(version {})", set.version);
    Ok(())
}

async fn set(
    flags: &dyn FlagStore,
    name: &str,
    values: &[String],
    reason: &str,
    who: String,
    json: bool,
) -> anyhow::Result<()> {
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why (it goes into the audit trail)");
    }
    let (name, value) = flag_name_value(name, values)?;
    let set = flags
        .set(&name, &value, &who, reason)
        .await
        .with_context(|| format!("setting {name}"))?;
    if json {
        super::print_json(
            &json!({"name": name, "value": value, "version": set.version, "actor": who}),
        );
    } else {
        out!("{name} = {value} (version {}, by {who})", set.version);
    }
    Ok(())
}

async fn history(flags: &dyn FlagStore, limit: usize, json: bool) -> anyhow::Result<()> {
    let entries = flags
        .history(limit)
        .await
        .context("reading the audit trail")?;
    if json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({"version": e.version, "at": e.at, "actor": e.actor, "reason": e.reason,
                       "name": e.name, "old": e.old, "new": e.new})
            })
            .collect();
        super::print_json(&json!(rows));
        return Ok(());
    }
    for entry in entries {
        out!(
            "{}  v{:<4} {:<20} {} -> {}  by {}: {}",
            entry.at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
            entry.version,
            entry.name,
            entry.old.as_deref().unwrap_or("(unset)"),
            entry.new,
            entry.actor,
            entry.reason
        );
    }
    Ok(())
}
