//! [`Fleet`] on DynamoDB: table `<prefix>-fleet` (key `pk` S, TTL on `ttl`).
//!
//! | item | pk | attributes |
//! |---|---|---|
//! | conversation lease | `lease#<key>` | owner, until (ms), ttl (s; an hour after until) |
//! | quota bucket | `bucket#<name>` | tat (µs), paused (µs) |
//!
//! A lease is one conditional `UpdateItem` (free, expired, or ours); a
//! release one conditional `DeleteItem`. A take is one conditional
//! `UpdateItem` of `tat`, computed from the state this process last saw;
//! when another process moved it first, the failed condition returns the
//! item as it is (`ALL_OLD`) and the take is computed again — one round
//! trip per take while this process is the only one taking, two when it
//! raced. `tat` and `paused` only ever grow, so a refusal computed from
//! a stale state is still right (the real wait can only be longer) and
//! costs no call. Expiry and GCRA use the host's wall clock: clocks of the
//! fleet's hosts must agree to well under a token interval (NTP does).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::error::{condition_held, from_sdk};
use super::item::{Item, item, n, s};
use crate::fleet::{BucketState, Grant, Rate};
use crate::{Fleet, PortError, Result};

/// Takes recomputed after lost races before giving up (as `Unavailable`).
const MAX_ATTEMPTS: usize = 6;
/// How long a lease item outlives its expiry before TTL deletes it.
const LEASE_KEEP_SECS: i64 = 3600;

#[derive(Debug)]
pub(crate) struct AwsFleet {
    ddb: Client,
    table: String,
    /// Each bucket's state as this process last saw it.
    seen: Mutex<HashMap<String, Option<BucketState>>>,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn get_i64(item: &Item, key: &str) -> Result<i64> {
    match item.get(key) {
        None => Ok(0),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| PortError::Corrupt(format!("fleet attribute {key}: {v:?}"))),
        Some(_) => Err(PortError::Corrupt(format!(
            "fleet attribute {key}: not a number"
        ))),
    }
}

fn state_of(item: &Item) -> Result<BucketState> {
    Ok(BucketState {
        tat_us: get_i64(item, "tat")?,
        paused_until_us: get_i64(item, "paused")?,
    })
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

impl AwsFleet {
    pub fn new(ddb: Client, table: &str) -> Self {
        AwsFleet {
            ddb,
            table: table.to_owned(),
            seen: Mutex::default(),
        }
    }

    fn seen(&self, bucket: &str) -> Option<BucketState> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(bucket).copied().flatten()
    }

    fn saw(&self, bucket: &str, state: Option<BucketState>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(bucket.to_owned(), state);
    }

    /// Move `tat` from `old` (None: no item yet) to `new`, unless paused.
    /// `Err(found)` with the item as it is when the condition failed.
    async fn advance(
        &self,
        bucket: &str,
        old: Option<BucketState>,
        new: i64,
        now: i64,
    ) -> Result<std::result::Result<(), Option<Item>>> {
        let mut req = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", s(format!("bucket#{bucket}")))])))
            .update_expression("SET tat = :new")
            .expression_attribute_values(":new", n(new))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        req = match old {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(old) => req
                .condition_expression(
                    "tat = :old AND (attribute_not_exists(paused) OR paused <= :now)",
                )
                .expression_attribute_values(":old", n(old.tat_us))
                .expression_attribute_values(":now", n(now)),
        };
        match req.send().await {
            Ok(_) => Ok(Ok(())),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Ok(Err(c.item().cloned()))
                }
                _ => Err(from_sdk("fleet bucket take", e)),
            },
        }
    }
}

#[async_trait]
impl Fleet for AwsFleet {
    async fn lease(&self, key: &str, owner: &str, hold: Duration) -> Result<bool> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let until = now_ms + i64::try_from(hold.as_millis()).unwrap_or(i64::MAX / 4);
        let res = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", s(format!("lease#{key}")))])))
            .update_expression("SET #o = :o, #u = :u, #t = :t")
            .condition_expression("attribute_not_exists(pk) OR #o = :o OR #u < :now")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#u", "until")
            .expression_attribute_names("#t", "ttl")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":u", n(until))
            .expression_attribute_values(":t", n(until / 1000 + LEASE_KEEP_SECS))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        condition_held("fleet lease", res)
    }

    async fn release(&self, key: &str, owner: &str) -> Result<()> {
        let res = self
            .ddb
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", s(format!("lease#{key}")))])))
            .condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(owner))
            .send()
            .await;
        // A failed condition: expired and taken by another, or gone — not
        // ours to delete.
        condition_held("fleet lease release", res).map(drop)
    }

    async fn take(&self, bucket: &str, want: u32, rate: Rate) -> Result<Grant> {
        let mut old = self.seen(bucket);
        for _ in 0..MAX_ATTEMPTS {
            let now = now_us();
            let (grant, next) = old.unwrap_or_default().take(now, want, rate);
            if grant.tokens == 0 {
                return Ok(grant);
            }
            match self.advance(bucket, old, next.tat_us, now).await? {
                Ok(()) => {
                    self.saw(bucket, Some(next));
                    return Ok(grant);
                }
                Err(found) => {
                    old = found.as_ref().map(state_of).transpose()?;
                    self.saw(bucket, old);
                }
            }
        }
        Err(PortError::Unavailable(format!(
            "fleet bucket {bucket}: {MAX_ATTEMPTS} lost races in a row"
        )))
    }

    async fn pause(&self, bucket: &str, d: Duration) -> Result<()> {
        let until = now_us() + micros(d);
        let res = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", s(format!("bucket#{bucket}")))])))
            .update_expression("SET paused = :u, tat = if_not_exists(tat, :zero)")
            .condition_expression("attribute_not_exists(paused) OR paused < :u")
            .expression_attribute_values(":u", n(until))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        // A failed condition: a longer pause is already in place.
        condition_held("fleet bucket pause", res)?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Some(st)) = seen.get_mut(bucket) {
            st.paused_until_us = st.paused_until_us.max(until);
        }
        Ok(())
    }
}
