//! The decision rules file (TOML): intents, routes, FAQ templates and
//! guardrail settings. The default ships in `rules/default.toml`.
use std::collections::BTreeMap;
use std::path::Path;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;

/// Most actions one event may plan, whatever the rules file says (a hard
/// guardrail, docs/worker.md).
pub const HARD_MAX_ACTIONS_PER_EVENT: usize = 3;
/// Most auto-replies per conversation in 24 h, whatever the rules file says.
pub const HARD_MAX_AUTO_REPLIES_PER_24H: usize = 3;

/// The rules file is invalid. Caller: refuse to start; fix the file.
#[derive(Debug, thiserror::Error)]
#[error("rules {source_name}: {reason}")]
pub struct RulesError {
    /// The file (or "built-in rules/default.toml").
    pub source_name: String,
    /// What is wrong with it.
    pub reason: String,
}

const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    settings: Settings,
    #[serde(default)]
    intent: Vec<IntentFile>,
    #[serde(default)]
    template: BTreeMap<String, TemplateFile>,
}

/// Global settings of the rules file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Below this confidence no auto-reply is sent.
    pub min_reply_confidence: f64,
    /// Most actions one event may plan (at most [`HARD_MAX_ACTIONS_PER_EVENT`]).
    pub max_actions_per_event: usize,
    /// Most auto-replies per conversation in 24 h (at most [`HARD_MAX_AUTO_REPLIES_PER_24H`]).
    pub max_auto_replies_per_24h: usize,
    /// The route of a message no intent matched.
    pub default_route: String,
    /// Tag added to every ticket the worker routed.
    pub processed_tag: String,
    /// Tag added with the route.
    pub routed_tag: String,
    /// Tag added once a reply went out.
    pub replied_tag: String,
    #[serde(default = "default_step")]
    /// Confidence added per extra pattern that matches.
    pub confidence_step: f64,
}

fn default_step() -> f64 {
    0.05
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentFile {
    name: String,
    #[serde(default)]
    tier0: bool,
    #[serde(default)]
    priority: i32,
    confidence: f64,
    route: Option<String>,
    template: Option<String>,
    patterns: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    body: String,
}

/// One compiled intent.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The intent's name (what decisions record).
    pub name: String,
    /// Tier-0: never automated, always handed to a human.
    pub tier0: bool,
    /// Higher wins when several match.
    pub priority: i32,
    /// Confidence of a one-pattern match.
    pub confidence: f64,
    /// The route it tags.
    pub route: Option<String>,
    /// The reply template it calls for.
    pub template: Option<String>,
    patterns: Vec<Regex>,
}

impl Intent {
    /// Confidence of this intent for `text`, if any pattern matches.
    pub fn score(&self, text: &str, step: f64) -> Option<f64> {
        let hits = self.patterns.iter().filter(|p| p.is_match(text)).count();
        (hits > 0).then(|| (self.confidence + step * (hits - 1) as f64).min(0.99))
    }
}

/// Compiled, validated rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Global settings.
    pub settings: Settings,
    /// Intents, in file order.
    pub intents: Vec<Intent>,
    /// Reply templates by name.
    pub templates: BTreeMap<String, String>,
}

impl Rules {
    /// The rules shipped with switchyard.
    pub fn default_rules() -> Result<Rules, RulesError> {
        Rules::parse(DEFAULT_RULES, "built-in rules/default.toml")
    }

    /// Read and parse a rules file.
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            source_name: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Rules::parse(&text, &path.display().to_string())
    }

    /// Parse and validate; the error names the file and what is wrong.
    pub fn parse(text: &str, source_name: &str) -> Result<Rules, RulesError> {
        let bad = |reason: String| RulesError {
            source_name: source_name.to_owned(),
            reason,
        };
        let file: RulesFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut settings = file.settings;
        settings.max_actions_per_event = settings
            .max_actions_per_event
            .min(HARD_MAX_ACTIONS_PER_EVENT);
        settings.max_auto_replies_per_24h = settings
            .max_auto_replies_per_24h
            .min(HARD_MAX_AUTO_REPLIES_PER_24H);
        let templates: BTreeMap<String, String> = file
            .template
            .into_iter()
            .map(|(k, v)| (k, v.body))
            .collect();
        let mut intents = Vec::with_capacity(file.intent.len());
        for i in file.intent {
            if let Some(t) = &i.template
                && !templates.contains_key(t)
            {
                return Err(bad(format!(
                    "intent {:?} names template {t:?}, which is not defined",
                    i.name
                )));
            }
            if i.tier0 && i.template.is_some() {
                return Err(bad(format!(
                    "intent {:?} is tier0 and has a template: tier-0 intents are never automated",
                    i.name
                )));
            }
            if !(0.0..=1.0).contains(&i.confidence) {
                return Err(bad(format!(
                    "intent {:?}: confidence must be in 0..=1",
                    i.name
                )));
            }
            let patterns = i
                .patterns
                .iter()
                .map(|p| {
                    RegexBuilder::new(p)
                        .case_insensitive(true)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| bad(format!("intent {:?}: pattern {p:?}: {e}", i.name)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if patterns.is_empty() {
                return Err(bad(format!("intent {:?} has no patterns", i.name)));
            }
            intents.push(Intent {
                name: i.name,
                tier0: i.tier0,
                priority: i.priority,
                confidence: i.confidence,
                route: i.route,
                template: i.template,
                patterns,
            });
        }
        Ok(Rules {
            settings,
            intents,
            templates,
        })
    }

    /// Fill a template's `{variables}`; unknown variables become empty.
    pub fn render(&self, template: &str, vars: &BTreeMap<&str, String>) -> Option<String> {
        let body = self.templates.get(template)?;
        let mut out = String::with_capacity(body.len());
        let mut rest = body.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            match after.find('}') {
                Some(end)
                    if after[..end]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    out.push_str(vars.get(&after[..end]).map_or("", String::as_str));
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Some(out)
    }
}
