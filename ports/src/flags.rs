//! Operator flags: a versioned key → value map with an audit entry per
//! change, and [`Flags`], the typed view every reader uses.
//!
//! Names as an operator types them: `kill-switch` (`off` | `auto_replies` |
//! `all_writes`), `shadow` (`on` | `off`), `safe-mode` (`on` | `off`),
//! `channel.<name>` (`on` | `off`), `template.<id>` (`on` | `off`),
//! `pause.<downstream>` (`on` | `off`). An absent flag has its default:
//! kill switch off, shadow off, safe mode off, channels and templates on,
//! nothing paused.
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{PortError, Result};

/// The raw stored flags. `version` increases by one per change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagSet {
    /// Changes so far (0: never set).
    pub version: u64,
    /// Every flag that was set, by name.
    pub values: BTreeMap<String, String>,
}

/// One audited change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The flag-set version this change produced.
    pub version: u64,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// Who made it.
    pub actor: String,
    /// Why, as the operator said.
    pub reason: String,
    /// The flag changed.
    pub name: String,
    /// Its value before (`None`: it was unset).
    pub old: Option<String>,
    /// Its value after.
    pub new: String,
}

/// The stored flags and their audit trail.
#[async_trait]
pub trait FlagStore: Send + Sync + std::fmt::Debug {
    /// Every flag and the set's version.
    async fn get_all(&self) -> Result<FlagSet>;
    /// Set one flag and write its audit entry atomically. The name and value
    /// must pass [`validate`] (adapters call it). Returns the new set.
    async fn set(&self, name: &str, value: &str, actor: &str, reason: &str) -> Result<FlagSet>;
    /// Newest first.
    async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>>;
}

/// Kill-switch scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum KillSwitch {
    /// Nothing is stopped.
    #[default]
    Off,
    /// No customer-facing message, ever.
    AutoReplies,
    /// No downstream write at all (route-only is also stopped).
    AllWrites,
}

impl KillSwitch {
    /// From its flag value (`off`, `auto_replies`, `all_writes`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(KillSwitch::Off),
            "auto_replies" => Some(KillSwitch::AutoReplies),
            "all_writes" => Some(KillSwitch::AllWrites),
            _ => None,
        }
    }
    /// Its flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            KillSwitch::Off => "off",
            KillSwitch::AutoReplies => "auto_replies",
            KillSwitch::AllWrites => "all_writes",
        }
    }
}

/// Check a flag name and value; the error names what is wrong.
pub fn validate(name: &str, value: &str) -> Result<()> {
    let on_off = |v: &str| matches!(v, "on" | "off");
    let ok = match name {
        "kill-switch" => KillSwitch::parse(value).is_some(),
        "shadow" | "safe-mode" => on_off(value),
        _ => {
            let Some((kind, key)) = name.split_once('.') else {
                return Err(PortError::Invalid(format!("unknown flag {name:?}")));
            };
            if !matches!(kind, "channel" | "template" | "pause") {
                return Err(PortError::Invalid(format!("unknown flag {name:?}")));
            }
            let key_ok = !key.is_empty()
                && key.len() <= 64
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
            if !key_ok {
                return Err(PortError::Invalid(format!(
                    "flag {name:?}: the part after '{kind}.' must be 1-64 of [A-Za-z0-9_-]"
                )));
            }
            on_off(value)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(PortError::Invalid(format!(
            "invalid value {value:?} for flag {name:?}"
        )))
    }
}

/// The typed view of a [`FlagSet`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// The flag set's version.
    pub version: u64,
    /// `kill-switch`.
    pub kill_switch: KillSwitch,
    /// `shadow`: every write is built and recorded, not sent.
    pub shadow: bool,
    /// `safe-mode`: route only, no customer-facing writes or optional
    /// enrichment.
    pub safe_mode: bool,
    values: BTreeMap<String, String>,
}

impl Flags {
    /// The typed view of `set`; absent flags have their defaults.
    pub fn from_set(set: &FlagSet) -> Self {
        let get = |k: &str| set.values.get(k).map(String::as_str);
        Flags {
            version: set.version,
            kill_switch: get("kill-switch")
                .and_then(KillSwitch::parse)
                .unwrap_or_default(),
            shadow: get("shadow") == Some("on"),
            safe_mode: get("safe-mode") == Some("on"),
            values: set.values.clone(),
        }
    }
    /// False when `channel.<channel>` is `off`.
    pub fn channel_enabled(&self, channel: &str) -> bool {
        self.values
            .get(&format!("channel.{channel}"))
            .map(String::as_str)
            != Some("off")
    }
    /// False when `template.<template>` is `off`.
    pub fn template_enabled(&self, template: &str) -> bool {
        self.values
            .get(&format!("template.{template}"))
            .map(String::as_str)
            != Some("off")
    }
    /// True when `pause.<downstream>` is `on`.
    pub fn paused(&self, downstream: &str) -> bool {
        self.values
            .get(&format!("pause.{downstream}"))
            .map(String::as_str)
            == Some("on")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_and_values() {
        assert!(validate("kill-switch", "all_writes").is_ok());
        assert!(validate("kill-switch", "on").is_err());
        assert!(validate("shadow", "on").is_ok());
        assert!(validate("channel.email", "off").is_ok());
        assert!(validate("pause.richpanel", "on").is_ok());
        assert!(validate("channel.", "on").is_err());
        assert!(validate("nonsense", "on").is_err());
        assert!(validate("template.faq order", "on").is_err());
    }

    #[test]
    fn typed_view_defaults_and_values() {
        let mut set = FlagSet::default();
        let f = Flags::from_set(&set);
        assert_eq!(f.kill_switch, KillSwitch::Off);
        assert!(!f.shadow && f.channel_enabled("email") && !f.paused("openai"));
        set.values
            .insert("kill-switch".into(), "auto_replies".into());
        set.values.insert("channel.email".into(), "off".into());
        set.values.insert("pause.openai".into(), "on".into());
        let f = Flags::from_set(&set);
        assert_eq!(f.kill_switch, KillSwitch::AutoReplies);
        assert!(!f.channel_enabled("email") && f.paused("openai"));
    }
}
