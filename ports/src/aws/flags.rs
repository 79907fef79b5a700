//! Flags on DynamoDB: table `<prefix>-flags` (key `pk` S, `sk` N).
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | current set | `flags` | 0 | version, values (map of strings) |
//! | audit entry | `audit` | version | at, actor, reason, name, old?, new |
//!
//! A change is one `TransactWriteItems`: the new set conditioned on the
//! version it was computed from, plus its audit entry. Concurrent changes
//! retry on the fresh set (flag changes are rare; a handful of retries is
//! plenty).
use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::error::{built, from_sdk};
use super::item::{Item, get_opt_s, get_s, get_time, get_u64, item, n, now_millis, s};
use crate::flags::validate;
use crate::{AuditEntry, FlagSet, FlagStore, PortError, Result};

const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct AwsFlagStore {
    ddb: Client,
    table: String,
}

impl AwsFlagStore {
    pub fn new(ddb: Client, table: &str) -> Self {
        AwsFlagStore {
            ddb,
            table: table.to_owned(),
        }
    }

    /// Write `next` (computed from version `from`) and its audit entry.
    /// Ok(false) when another change won the race.
    async fn write(&self, from: u64, next: &FlagSet, audit: &AuditEntry) -> Result<bool> {
        let values: HashMap<String, AttributeValue> =
            next.values.iter().map(|(k, v)| (k.clone(), s(v))).collect();
        let mut set = Put::builder().table_name(&self.table).set_item(Some(item([
            ("pk", s("flags")),
            ("sk", n(0)),
            ("version", n(next.version)),
            ("values", AttributeValue::M(values)),
        ])));
        set = if from == 0 {
            set.condition_expression("attribute_not_exists(pk)")
        } else {
            set.condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(from))
        };
        let mut entry = item([
            ("pk", s("audit")),
            ("sk", n(audit.version)),
            ("at", n(audit.at.timestamp_millis())),
            ("actor", s(&audit.actor)),
            ("reason", s(&audit.reason)),
            ("name", s(&audit.name)),
            ("new", s(&audit.new)),
        ]);
        if let Some(old) = &audit.old {
            entry.insert("old".into(), s(old));
        }
        let entry = Put::builder()
            .table_name(&self.table)
            .set_item(Some(entry))
            .condition_expression("attribute_not_exists(pk)");
        let res = self
            .ddb
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(built("flags put", set.build())?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(built("audit put", entry.build())?)
                    .build(),
            )
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c))
                    if c.cancellation_reasons().iter().any(|r| {
                        matches!(
                            r.code(),
                            Some("ConditionalCheckFailed" | "TransactionConflict")
                        )
                    }) =>
                {
                    Ok(false)
                }
                _ => Err(from_sdk("flags set", e)),
            },
        }
    }
}

#[async_trait]
impl FlagStore for AwsFlagStore {
    async fn get_all(&self) -> Result<FlagSet> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", s("flags")), ("sk", n(0))])))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("flags get", e))?;
        let Some(i) = out.item() else {
            return Ok(FlagSet::default());
        };
        let values = match i.get("values") {
            Some(AttributeValue::M(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    AttributeValue::S(v) => Ok((k.clone(), v.clone())),
                    _ => Err(PortError::Corrupt(format!("flag {k} is not a string"))),
                })
                .collect::<Result<BTreeMap<_, _>>>()?,
            _ => return Err(PortError::Corrupt("flag set lacks its values".into())),
        };
        Ok(FlagSet {
            version: get_u64(i, "version")?,
            values,
        })
    }

    async fn set(&self, name: &str, value: &str, actor: &str, reason: &str) -> Result<FlagSet> {
        validate(name, value)?;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get_all().await?;
            let mut next = current.clone();
            next.version += 1;
            let old = next.values.insert(name.to_owned(), value.to_owned());
            let audit = AuditEntry {
                version: next.version,
                at: now_millis(),
                actor: actor.to_owned(),
                reason: reason.to_owned(),
                name: name.to_owned(),
                old,
                new: value.to_owned(),
            };
            if self.write(current.version, &next, &audit).await? {
                return Ok(next);
            }
        }
        Err(PortError::Unavailable(format!(
            "flag {name}: {MAX_ATTEMPTS} concurrent changes in a row; retry"
        )))
    }

    async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let page = self
                .ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s("audit"))
                .scan_index_forward(false)
                .limit(i32::try_from(limit - out.len()).unwrap_or(i32::MAX))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("flags history", e))?;
            for i in page.items() {
                out.push(AuditEntry {
                    version: get_u64(i, "sk")?,
                    at: get_time(i, "at")?,
                    actor: get_s(i, "actor")?,
                    reason: get_s(i, "reason")?,
                    name: get_s(i, "name")?,
                    old: get_opt_s(i, "old"),
                    new: get_s(i, "new")?,
                });
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}
