//! The fused intake: ledger claim, queue send and ledger mark in ONE write
//! job — one transaction, one share of a group-commit fsync — instead of
//! three sequential durable writes. Atomic, so a crash leaves either all
//! three or none; the claim is therefore written as `enqueued` at once
//! (its send is in the same transaction), one row write instead of two.
use async_trait::async_trait;

use super::db::Db;
use super::ledger::try_create_in;
use super::queue::{SqliteQueue, check_id, send_in};
use super::queue_sql::{NewRow, attrs_to_json, insert_message};
use super::sql::{dur_ms, now_ms};
use crate::{CreateOutcome, EnqueueOnce, EnqueueOutcome, Intake, LedgerState, Result};

#[derive(Debug, Clone)]
pub struct SqliteIntake {
    db: Db,
    queue: SqliteQueue,
}

impl SqliteIntake {
    pub fn new(db: Db, queue: SqliteQueue) -> Self {
        SqliteIntake { db, queue }
    }
}

#[async_trait]
impl Intake for SqliteIntake {
    async fn enqueue_once(&self, req: EnqueueOnce) -> Result<EnqueueOutcome> {
        crate::ledger::check_key(&req.key)?;
        crate::queue::check_size(&req.message)?;
        check_id("group id", &req.message.group_id)?;
        check_id("dedup id", &req.message.dedup_id)?;
        let attributes = attrs_to_json(&req.message.attributes)?;
        let window = dur_ms(self.queue.dedup_window());
        let id = uuid::Uuid::now_v7().to_string();
        // The ledger record (same key for the whole dedup window) already
        // makes this send happen once; the queue's own dedup table would
        // only repeat that check, at one more random-key B-tree insert.
        let dedup_by_ledger = req.keep_for >= self.queue.dedup_window();
        let outcome = self
            .db
            .write(move |conn| {
                let claim = try_create_in(
                    conn,
                    &req.key,
                    LedgerState::Enqueued,
                    req.payload_hash.clone(),
                    req.owner.clone(),
                    req.in_progress_for,
                    req.keep_for,
                )?;
                if let CreateOutcome::Exists(record) = claim {
                    return Ok(EnqueueOutcome::Exists(record));
                }
                if dedup_by_ledger {
                    insert_message(conn, &NewRow::of(&req.message, &attributes, &id), now_ms())?;
                } else {
                    send_in(conn, &req.message, &attributes, window, &id)?;
                }
                Ok(EnqueueOutcome::Enqueued)
            })
            .await?;
        if outcome == EnqueueOutcome::Enqueued {
            self.queue.wake_receivers();
        }
        Ok(outcome)
    }
}
