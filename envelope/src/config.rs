//! [`NormalizeConfig`]: limits and Richpanel field aliases.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Canonical Richpanel field names, in the order the error message lists them.
pub const RICHPANEL_FIELDS: [&str; 12] = [
    "ticket_id",
    "ticket_url",
    "trigger",
    "message_id",
    "message",
    "channel",
    "customer_email",
    "customer_phone",
    "customer_id",
    "created_at",
    "tags",
    "assignee_id",
];

/// How input is normalized. `Default` gives the documented defaults; the
/// struct deserializes from a config file with every field optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NormalizeConfig {
    /// Message text longer than this (in characters) is cut on a character
    /// boundary and marked truncated. Default 4000: a long support email's
    /// worth, small enough to keep SQS messages (256 KB) and model prompts
    /// cheap.
    pub max_text_chars: usize,
    /// Seconds per time bucket for Richpanel bodies without a message id.
    /// Deliveries of the same ticket news within one bucket collapse into one
    /// event. Default 60.
    pub time_bucket_secs: u32,
    /// Richpanel: canonical field name → JSON keys accepted for it, tried in
    /// order. A key may be a dotted path into nested objects (`ticket.id`).
    /// When deserialized, the lists given replace the defaults for those
    /// names only; other names keep their defaults.
    #[serde(deserialize_with = "merge_aliases")]
    pub richpanel_aliases: BTreeMap<String, Vec<String>>,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        let extra: &[(&str, &[&str])] = &[
            ("ticket_id", &["ticketId", "ticket.id", "conversation_id"]),
            ("ticket_url", &["ticketUrl", "ticket.url", "url"]),
            ("trigger", &["trigger_name", "event"]),
            ("message_id", &["messageId", "message.id", "comment_id"]),
            (
                "message",
                &[
                    "message_text",
                    "text",
                    "message.text",
                    "message.plain_body",
                    "plain_body",
                    "body",
                ],
            ),
            ("channel", &["via.channel", "ticket.channel"]),
            ("customer_email", &["customer.email", "email"]),
            ("customer_phone", &["customer.phone", "phone"]),
            ("customer_id", &["customer.id"]),
            ("created_at", &["createdAt", "message.created_at"]),
            ("tags", &["ticket.tags"]),
            ("assignee_id", &["assigneeId", "ticket.assignee_id"]),
        ];
        let richpanel_aliases = extra
            .iter()
            .map(|(name, more)| {
                let mut keys = vec![(*name).to_owned()];
                keys.extend(more.iter().map(|k| (*k).to_owned()));
                ((*name).to_owned(), keys)
            })
            .collect();
        Self {
            max_text_chars: 4000,
            time_bucket_secs: 60,
            richpanel_aliases,
        }
    }
}

fn merge_aliases<'de, D>(de: D) -> Result<BTreeMap<String, Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let given = BTreeMap::<String, Vec<String>>::deserialize(de)?;
    let mut merged = NormalizeConfig::default().richpanel_aliases;
    merged.extend(given);
    Ok(merged)
}

impl NormalizeConfig {
    /// The JSON keys accepted for a canonical Richpanel field.
    pub fn aliases<'a>(&'a self, canonical: &'a str) -> Vec<&'a str> {
        self.alias_keys(canonical).collect()
    }

    /// [`Self::aliases`] without collecting them (once per field per body).
    pub(crate) fn alias_keys<'a>(&'a self, canonical: &'a str) -> impl Iterator<Item = &'a str> {
        let configured = self
            .richpanel_aliases
            .get(canonical)
            .filter(|keys| !keys.is_empty());
        let fallback = configured.is_none().then_some(canonical);
        configured
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(fallback)
    }

    /// Adds an accepted key for a canonical field (builder style).
    pub fn with_alias(mut self, canonical: &str, key: &str) -> Self {
        self.richpanel_aliases
            .entry(canonical.to_owned())
            .or_insert_with(|| vec![canonical.to_owned()])
            .push(key.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_aliases_replace_only_their_names() {
        let cfg: NormalizeConfig =
            serde_json::from_str(r#"{"richpanel_aliases": {"message": ["body_text"]}}"#)
                .expect("config");
        assert_eq!(cfg.aliases("message"), ["body_text"]);
        assert_eq!(
            cfg.aliases("ticket_id"),
            NormalizeConfig::default().aliases("ticket_id")
        );
        assert_eq!(cfg.max_text_chars, 4000);
    }
}
