//! The idempotency ledger on DynamoDB: table `<prefix>-ledger`, key `pk`
//! (the event id), TTL attribute `ttl` (epoch seconds; AWS deletes up to
//! 48 h late, so expiry is also checked here on every read).
//!
//! `try_create` is one conditional `PutItem` (`attribute_not_exists(pk)`)
//! with `ReturnValuesOnConditionCheckFailure=ALL_OLD`: a conflict returns the
//! existing record in the same round trip. Only when that record is dead
//! (past `expires_at`) or an expired in-progress claim does a second
//! conditional put replace it, conditioned on the exact old claim so two
//! takers cannot both win.
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};

use super::error::{condition_held, from_sdk};
use super::item::{Item, get_s, get_time, item, n, now_millis, s};
use crate::{CreateOutcome, Ledger, LedgerRecord, LedgerState, PortError, Result};

/// Bound on optimistic retries when takers race on one dead record.
const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, Clone)]
pub(crate) struct AwsLedger {
    ddb: Client,
    table: String,
}

/// What a conditional put found.
enum Put {
    Done,
    /// The condition failed; the item as it was, if any.
    Lost(Option<Item>),
}

impl AwsLedger {
    pub fn new(ddb: Client, table: &str) -> Self {
        AwsLedger {
            ddb,
            table: table.to_owned(),
        }
    }

    /// Put `rec` if the stored item is exactly `expect` (None = absent).
    async fn put(&self, rec: &LedgerRecord, expect: Option<&LedgerRecord>) -> Result<Put> {
        let mut req = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(rec)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        req = match expect {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(old) => req
                .condition_expression("#o = :o AND #s = :s AND #ipu = :ipu AND #exp = :exp")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_names("#s", "state")
                .expression_attribute_names("#ipu", "in_progress_until")
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_values(":o", s(&old.owner))
                .expression_attribute_values(":s", s(old.state.as_str()))
                .expression_attribute_values(":ipu", n(old.in_progress_until.timestamp_millis()))
                .expression_attribute_values(":exp", n(old.expires_at.timestamp_millis())),
        };
        match req.send().await {
            Ok(_) => Ok(Put::Done),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => {
                    Ok(Put::Lost(c.item().cloned()))
                }
                _ => Err(from_sdk("ledger put", e)),
            },
        }
    }
}

#[async_trait]
impl Ledger for AwsLedger {
    async fn try_create(
        &self,
        key: &str,
        payload_hash: &str,
        owner: &str,
        in_progress_for: Duration,
        keep_for: Duration,
    ) -> Result<CreateOutcome> {
        crate::ledger::check_key(key)?;
        let mut expect: Option<LedgerRecord> = None;
        for _ in 0..MAX_ATTEMPTS {
            let now = now_millis();
            let rec = LedgerRecord {
                key: key.to_owned(),
                state: LedgerState::InProgress,
                payload_hash: payload_hash.to_owned(),
                owner: owner.to_owned(),
                created_at: now,
                in_progress_until: add(now, in_progress_for)?,
                expires_at: add(now, keep_for)?,
            };
            match self.put(&rec, expect.as_ref()).await? {
                Put::Done => {
                    return Ok(match expect {
                        Some(old) if old.expires_at > now => CreateOutcome::TakenOver(rec),
                        _ => CreateOutcome::Created(rec),
                    });
                }
                // Deleted (released) between our two writes: create afresh.
                Put::Lost(None) => expect = None,
                Put::Lost(Some(found)) => {
                    let found = from_item(&found)?;
                    let dead = found.expires_at <= now;
                    let claim_expired =
                        found.state == LedgerState::InProgress && found.in_progress_until <= now;
                    if !dead && !claim_expired {
                        return Ok(CreateOutcome::Exists(found));
                    }
                    expect = Some(found);
                }
            }
        }
        Err(PortError::Unavailable(format!(
            "ledger record: {MAX_ATTEMPTS} racing takeovers; retry"
        )))
    }

    async fn mark_enqueued(&self, key: &str, owner: &str) -> Result<()> {
        let req = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", s(key))])))
            .update_expression("SET #s = :enq")
            .condition_expression("#o = :o AND #s = :s")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":s", s(LedgerState::InProgress.as_str()))
            .expression_attribute_values(":enq", s(LedgerState::Enqueued.as_str()));
        if condition_held("ledger mark_enqueued", req.send().await)? {
            Ok(())
        } else {
            Err(PortError::ConditionFailed(
                "ledger record is not held in progress by this owner".into(),
            ))
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<()> {
        let req = self
            .ddb
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", s(key))])))
            .condition_expression("#o = :o AND #s = :s")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":s", s(LedgerState::InProgress.as_str()));
        // Not ours (or already gone): releasing is a no-op then.
        condition_held("ledger release", req.send().await).map(drop)
    }

    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>> {
        crate::ledger::check_key(key)?;
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", s(key))])))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("ledger get", e))?;
        let Some(found) = out.item() else {
            return Ok(None);
        };
        let rec = from_item(found)?;
        // Past expires_at counts as absent even before TTL deletes it.
        Ok((rec.expires_at > Utc::now()).then_some(rec))
    }
}

fn add(at: DateTime<Utc>, d: Duration) -> Result<DateTime<Utc>> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .ok_or_else(|| PortError::Invalid(format!("duration {d:?} is out of range")))
}

fn to_item(r: &LedgerRecord) -> Item {
    item([
        ("pk", s(&r.key)),
        ("state", s(r.state.as_str())),
        ("payload_hash", s(&r.payload_hash)),
        ("owner", s(&r.owner)),
        ("created_at", n(r.created_at.timestamp_millis())),
        (
            "in_progress_until",
            n(r.in_progress_until.timestamp_millis()),
        ),
        ("expires_at", n(r.expires_at.timestamp_millis())),
        // DynamoDB TTL wants epoch seconds; round up so it never deletes a
        // record before the code considers it expired.
        ("ttl", n(r.expires_at.timestamp() + 1)),
    ])
}

fn from_item(i: &Item) -> Result<LedgerRecord> {
    let state = get_s(i, "state")?;
    Ok(LedgerRecord {
        key: get_s(i, "pk")?,
        state: LedgerState::parse(&state)
            .ok_or_else(|| PortError::Corrupt(format!("ledger state {state:?}")))?,
        payload_hash: get_s(i, "payload_hash")?,
        owner: get_s(i, "owner")?,
        created_at: get_time(i, "created_at")?,
        in_progress_until: get_time(i, "in_progress_until")?,
        expires_at: get_time(i, "expires_at")?,
    })
}
