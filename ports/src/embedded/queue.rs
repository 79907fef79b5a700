//! The FIFO queue on SQLite.
//!
//! Order is the table's `seq`. The head of a group is its smallest `seq`
//! (kept in `queue_groups`); only a head is ever delivered, so a group with
//! a message in flight delivers nothing else, and one `receive` returns at
//! most ONE message per group (possibly from several groups). That is
//! stricter than SQS (which may batch several messages of one group) and is
//! what the worker wants: it processes one message per conversation at a
//! time anyway.
//!
//! A receive that would deliver a message for the `max_receive_count + 1`-th
//! time moves it to the DLQ instead. Each delivery mints a new receipt, so a
//! stale receipt no longer names the message (`NotFound`). Long polls wait
//! on a `Notify` woken by every commit that can make a message receivable,
//! and re-check when the earliest in-flight visibility ends.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::Notify;

use super::db::Db;
use super::queue_sql::{
    NewRow, attrs_from_json, attrs_to_json, insert_message, move_to_dlq, receive_now,
    remove_message, seq_of_receipt, set_visible_at,
};
use super::sql::{SqlResult, dur_ms, now_ms, to_time, to_u64};
use crate::queue::ATTR_DLQ_REASON;
use crate::{
    DeadLetter, DlqFilter, OutgoingMessage, PortError, Queue, QueueStats, ReceivedMessage, Redrive,
    Result,
};

/// Longest single sleep of a long poll between checks (a safety net; wakes
/// normally come from the `Notify`).
const POLL_SLICE: Duration = Duration::from_millis(500);

/// Most messages one receive hands out.
const MAX_RECEIVE: u32 = 100;
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    db: Db,
    max_receive_count: u32,
    dedup_window: Duration,
    /// Woken whenever a message may have become receivable.
    ready: Arc<Notify>,
}

impl SqliteQueue {
    pub fn dedup_window(&self) -> Duration {
        self.dedup_window
    }

    /// Wake long-polling receivers (after a send committed elsewhere).
    pub fn wake_receivers(&self) {
        self.ready.notify_waiters();
    }

    pub fn new(db: Db, max_receive_count: u32, dedup_window: Duration) -> Self {
        SqliteQueue {
            db,
            max_receive_count: max_receive_count.max(1),
            dedup_window,
            ready: Arc::new(Notify::new()),
        }
    }
}

pub(super) fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 {
        return Err(PortError::Invalid(format!(
            "{what} must be 1-128 characters, got {}",
            id.len()
        )));
    }
    if !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(PortError::Invalid(format!(
            "{what} must be printable ASCII without spaces"
        )));
    }
    Ok(())
}

fn stale_receipt() -> PortError {
    PortError::NotFound(
        "receipt is stale or unknown (message redelivered, moved or deleted)".into(),
    )
}

type DlqRow = (DeadLetter, String, i64);

/// Up to `limit` dead letters `filter` matches, with their seq, in DLQ
/// order.
fn dead_letters(
    conn: &Connection,
    filter: &DlqFilter,
    limit: usize,
) -> Result<Vec<(i64, DeadLetter)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, group_id, dedup_id, body, attributes, reason, receive_count, sent_at, seq
             FROM queue_dlq WHERE ?1 IS NULL OR group_id = ?1 ORDER BY seq",
        )
        .db()?;
    let rows = stmt
        .query_map([&filter.group], |r| {
            Ok((dead_letter_from_row(r)?, r.get(8)?))
        })
        .db()?;
    let mut letters = Vec::new();
    for row in rows {
        if letters.len() >= limit {
            break;
        }
        let ((mut d, attrs, sent_at), seq) = row.db()?;
        d.attributes = attrs_from_json(&attrs)?;
        d.sent_at = to_time(sent_at)?;
        if filter.matches(&d) {
            letters.push((seq, d));
        }
    }
    Ok(letters)
}

fn dead_letter_from_row(r: &Row<'_>) -> rusqlite::Result<DlqRow> {
    Ok((
        DeadLetter {
            id: r.get(0)?,
            group_id: r.get(1)?,
            dedup_id: r.get(2)?,
            body: r.get(3)?,
            attributes: BTreeMap::new(),
            reason: r.get(5)?,
            receive_count: r.get(6)?,
            sent_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        },
        r.get(4)?,
        r.get(7)?,
    ))
}

/// Dedup check + insert, inside the caller's write job (also used by the
/// fused intake). `Ok(false)`: a duplicate within the window, nothing added.
pub(super) fn send_in(
    conn: &Connection,
    msg: &OutgoingMessage,
    attributes: &str,
    window: i64,
    id: &str,
) -> Result<bool> {
    let now = now_ms();
    // Forget dedup ids older than the window, a few at a time.
    conn.prepare_cached(
        "DELETE FROM queue_dedup WHERE dedup_id IN
         (SELECT dedup_id FROM queue_dedup WHERE sent_at <= ?1 LIMIT 64)",
    )
    .db()?
    .execute([now - window])
    .db()?;
    let seen: Option<i64> = conn
        .prepare_cached("SELECT sent_at FROM queue_dedup WHERE dedup_id = ?1")
        .db()?
        .query_row([&msg.dedup_id], |r| r.get(0))
        .optional()
        .db()?;
    if seen.is_some_and(|at| at > now - window) {
        return Ok(false);
    }
    conn.prepare_cached("INSERT OR REPLACE INTO queue_dedup (dedup_id, sent_at) VALUES (?1, ?2)")
        .db()?
        .execute(params![msg.dedup_id, now])
        .db()?;
    insert_message(conn, &NewRow::of(msg, attributes, id), now)?;
    Ok(true)
}

#[async_trait]
impl Queue for SqliteQueue {
    /// One receive is one write transaction (a group-commit fsync); the
    /// worker's single receive loop would otherwise top out at 10 messages
    /// per fsync.
    fn max_receive_count(&self) -> Option<u32> {
        Some(self.max_receive_count)
    }

    fn max_receive(&self) -> u32 {
        MAX_RECEIVE
    }

    async fn send(&self, msg: OutgoingMessage) -> Result<String> {
        crate::queue::check_size(&msg)?;
        check_id("group id", &msg.group_id)?;
        check_id("dedup id", &msg.dedup_id)?;
        let attributes = attrs_to_json(&msg.attributes)?;
        let window = dur_ms(self.dedup_window);
        let id = uuid::Uuid::now_v7().to_string();
        let new_id = id.clone();
        let enqueued = self
            .db
            .write(move |conn| send_in(conn, &msg, &attributes, window, &new_id))
            .await?;
        if enqueued {
            self.ready.notify_waiters();
        }
        // Like SQS, a deduplicated send still answers with a message id.
        Ok(id)
    }

    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>> {
        if !(1..=MAX_RECEIVE).contains(&max) {
            return Err(PortError::Invalid(format!(
                "receive max must be 1..={MAX_RECEIVE}, got {max}"
            )));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a send that commits
            // between the look and the wait still wakes us.
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let max_receive_count = self.max_receive_count;
            let attempt = self
                .db
                .write(move |conn| receive_now(conn, max as usize, visibility, max_receive_count))
                .await?;
            let now = tokio::time::Instant::now();
            if !attempt.messages.is_empty() || now >= deadline {
                return Ok(attempt.messages);
            }
            let mut until = deadline.min(now + POLL_SLICE);
            if let Some(at) = attempt.next_visible_at {
                let ms = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                until = until.min(now + Duration::from_millis(ms));
            }
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        let receipt = receipt.to_owned();
        self.db
            .write(move |conn| {
                let seq = seq_of_receipt(conn, &receipt)?.ok_or_else(stale_receipt)?;
                remove_message(conn, seq)
            })
            .await?;
        self.ready.notify_waiters();
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> Result<()> {
        let receipt = receipt.to_owned();
        self.db
            .write(move |conn| {
                if set_visible_at(conn, &receipt, now_ms() + dur_ms(visibility))? {
                    Ok(())
                } else {
                    Err(stale_receipt())
                }
            })
            .await?;
        self.ready.notify_waiters();
        Ok(())
    }

    async fn dead_letter(&self, msg: &ReceivedMessage, reason: &str) -> Result<()> {
        let receipt = msg.receipt.clone();
        let reason = reason.to_owned();
        self.db
            .write(move |conn| {
                let seq = seq_of_receipt(conn, &receipt)?.ok_or_else(stale_receipt)?;
                move_to_dlq(conn, seq, &reason, true, now_ms())
            })
            .await?;
        self.ready.notify_waiters();
        Ok(())
    }

    async fn dlq_list(&self, filter: &DlqFilter, limit: usize) -> Result<Vec<DeadLetter>> {
        let filter = filter.clone();
        self.db
            .read(move |conn| {
                Ok(dead_letters(conn, &filter, limit)?
                    .into_iter()
                    .map(|(_, d)| d)
                    .collect())
            })
            .await
    }

    async fn dlq_redrive(&self, which: Redrive) -> Result<usize> {
        let moved = self
            .db
            .write(move |conn| {
                let seqs: Vec<i64> = match &which {
                    Redrive::One(id) => {
                        let seq: Option<i64> = conn
                            .query_row("SELECT seq FROM queue_dlq WHERE id = ?1", [id], |r| {
                                r.get(0)
                            })
                            .optional()
                            .db()?;
                        vec![seq.ok_or_else(|| PortError::NotFound(format!("dead letter {id}")))?]
                    }
                    Redrive::Matching(filter) => dead_letters(conn, filter, usize::MAX)?
                        .into_iter()
                        .map(|(seq, _)| seq)
                        .collect(),
                };
                let now = now_ms();
                for seq in &seqs {
                    // To the tail, in DLQ order, keeping id, group and dedup
                    // id, bypassing dedup; the reason attribute is dropped.
                    let (id, group_id, dedup_id, body, attrs): (
                        String,
                        String,
                        String,
                        String,
                        String,
                    ) = conn
                        .query_row(
                            "SELECT id, group_id, dedup_id, body, attributes FROM queue_dlq
                             WHERE seq = ?1",
                            [seq],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                        )
                        .db()?;
                    let mut attrs = attrs_from_json(&attrs)?;
                    attrs.remove(ATTR_DLQ_REASON);
                    let row = NewRow {
                        id: &id,
                        group_id: &group_id,
                        dedup_id: &dedup_id,
                        body: &body,
                        attributes: &attrs_to_json(&attrs)?,
                    };
                    insert_message(conn, &row, now)?;
                    conn.execute("DELETE FROM queue_dlq WHERE seq = ?1", [seq])
                        .db()?;
                }
                Ok(seqs.len())
            })
            .await?;
        if moved > 0 {
            self.ready.notify_waiters();
        }
        Ok(moved)
    }

    async fn stats(&self) -> Result<QueueStats> {
        self.db
            .read(|conn| {
                let now = now_ms();
                let (total, in_flight, dlq, oldest): (i64, i64, i64, Option<i64>) = conn
                    .query_row(
                        "SELECT (SELECT COUNT(*) FROM queue_messages),
                                -- Only heads are ever received: these are heads.
                                (SELECT COUNT(*) FROM queue_messages
                                  WHERE receipt IS NOT NULL AND visible_at > ?1),
                                (SELECT COUNT(*) FROM queue_dlq),
                                -- Rows are sent in seq order (a redrive sends anew),
                                -- so the first row is the oldest: no scan of the
                                -- backlog, which `COUNT(*)` keeps to its smallest
                                -- index.
                                (SELECT sent_at FROM queue_messages ORDER BY seq LIMIT 1)",
                        [now],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .db()?;
                Ok(QueueStats {
                    visible: to_u64(total.saturating_sub(in_flight))?,
                    in_flight: to_u64(in_flight)?,
                    dlq: to_u64(dlq)?,
                    oldest_age: oldest.map(|t| {
                        Duration::from_millis(u64::try_from(now.saturating_sub(t)).unwrap_or(0))
                    }),
                })
            })
            .await
    }
}
