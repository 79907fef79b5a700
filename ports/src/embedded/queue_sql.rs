//! Row-level queue operations, run inside write jobs. Every insert and
//! removal of a main-queue row goes through here so `queue_groups` (the
//! head of each group) stays exact.
use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::sql::{SqlResult, dur_ms, now_ms, to_time};
use crate::queue::ATTR_DLQ_REASON;
use crate::{PortError, ReceivedMessage, Result};

pub fn attrs_to_json(a: &BTreeMap<String, String>) -> Result<String> {
    serde_json::to_string(a).map_err(|e| PortError::Invalid(format!("attributes: {e}")))
}

pub fn attrs_from_json(s: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(s).map_err(|e| PortError::Corrupt(format!("queue attributes: {e}")))
}

/// A main-queue row about to be inserted.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub group_id: &'a str,
    pub dedup_id: &'a str,
    pub body: &'a str,
    pub attributes: &'a str,
}

impl<'a> NewRow<'a> {
    pub fn of(msg: &'a crate::OutgoingMessage, attributes: &'a str, id: &'a str) -> Self {
        NewRow {
            id,
            group_id: &msg.group_id,
            dedup_id: &msg.dedup_id,
            body: &msg.body,
            attributes,
        }
    }
}

/// Append a message at the tail of the queue.
pub fn insert_message(conn: &Connection, row: &NewRow<'_>, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO queue_messages (id, group_id, dedup_id, body, attributes, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .db()?
    .execute(params![
        row.id,
        row.group_id,
        row.dedup_id,
        row.body,
        row.attributes,
        now
    ])
    .db()?;
    let seq = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO queue_groups (group_id, head_seq) VALUES (?1, ?2)
         ON CONFLICT (group_id) DO NOTHING",
    )
    .db()?
    .execute(params![row.group_id, seq])
    .db()?;
    Ok(())
}

/// Delete a main-queue row and move its group's head on.
pub fn remove_message(conn: &Connection, seq: i64) -> Result<()> {
    let group: Option<String> = conn
        .prepare_cached("DELETE FROM queue_messages WHERE seq = ?1 RETURNING group_id")
        .db()?
        .query_row([seq], |r| r.get(0))
        .optional()
        .db()?;
    let Some(group) = group else {
        return Err(PortError::NotFound(format!("queue message #{seq}")));
    };
    let next: Option<i64> = conn
        .prepare_cached("SELECT MIN(seq) FROM queue_messages WHERE group_id = ?1")
        .db()?
        .query_row([&group], |r| r.get(0))
        .db()?;
    match next {
        Some(head) => conn
            .prepare_cached("UPDATE queue_groups SET head_seq = ?2 WHERE group_id = ?1")
            .db()?
            .execute(params![group, head])
            .db()?,
        None => conn
            .prepare_cached("DELETE FROM queue_groups WHERE group_id = ?1")
            .db()?
            .execute([&group])
            .db()?,
    };
    Ok(())
}

/// A new receipt for row `seq`: `<seq>.<random nonce>`. The row is found
/// by its primary key (no receipt index to maintain), and the nonce — fresh
/// for every delivery — makes an earlier delivery's receipt stale.
fn mint_receipt(seq: i64) -> String {
    format!("{seq}.{}", uuid::Uuid::new_v4().simple())
}

/// The main-queue row holding `receipt`, if any (a receipt of any other
/// shape names none).
pub fn seq_of_receipt(conn: &Connection, receipt: &str) -> Result<Option<i64>> {
    let Some(seq) = receipt_seq(receipt) else {
        return Ok(None);
    };
    conn.prepare_cached("SELECT seq FROM queue_messages WHERE seq = ?1 AND receipt = ?2")
        .db()?
        .query_row(params![seq, receipt], |r| r.get(0))
        .optional()
        .db()
}

/// Hide the row holding `receipt` until `visible_at`. `Ok(false)`: no row
/// holds it.
pub fn set_visible_at(conn: &Connection, receipt: &str, visible_at: i64) -> Result<bool> {
    let Some(seq) = receipt_seq(receipt) else {
        return Ok(false);
    };
    let n = conn
        .prepare_cached("UPDATE queue_messages SET visible_at = ?3 WHERE seq = ?1 AND receipt = ?2")
        .db()?
        .execute(params![seq, receipt, visible_at])
        .db()?;
    Ok(n > 0)
}

fn receipt_seq(receipt: &str) -> Option<i64> {
    receipt.split_once('.')?.0.parse().ok()
}

/// Move one main-queue row to the DLQ; `set_attr` adds the reason as the
/// `dlq_reason` attribute (direct dead-lettering).
pub fn move_to_dlq(
    conn: &Connection,
    seq: i64,
    reason: &str,
    set_attr: bool,
    now: i64,
) -> Result<()> {
    let attributes: Option<String> = conn
        .query_row(
            "SELECT attributes FROM queue_messages WHERE seq = ?1",
            [seq],
            |r| r.get(0),
        )
        .optional()
        .db()?;
    let Some(attributes) = attributes else {
        return Err(PortError::NotFound(format!("queue message #{seq}")));
    };
    let attributes = if set_attr {
        let mut a = attrs_from_json(&attributes)?;
        a.insert(ATTR_DLQ_REASON.to_owned(), reason.to_owned());
        attrs_to_json(&a)?
    } else {
        attributes
    };
    conn.execute(
        "INSERT INTO queue_dlq (id, group_id, dedup_id, body, attributes, reason, receive_count, sent_at, dead_at)
         SELECT id, group_id, dedup_id, body, ?2, ?3, receive_count, sent_at, ?4
         FROM queue_messages WHERE seq = ?1",
        params![seq, attributes, reason, now],
    )
    .db()?;
    remove_message(conn, seq)
}

/// A head row as stored.
struct Head {
    seq: i64,
    id: String,
    group_id: String,
    dedup_id: String,
    body: String,
    attributes: String,
    sent_at: i64,
    receive_count: u32,
}

fn head_from_row(r: &Row<'_>) -> rusqlite::Result<Head> {
    Ok(Head {
        seq: r.get(0)?,
        id: r.get(1)?,
        group_id: r.get(2)?,
        dedup_id: r.get(3)?,
        body: r.get(4)?,
        attributes: r.get(5)?,
        sent_at: r.get(6)?,
        receive_count: r.get(7)?,
    })
}

/// Visible heads, oldest first.
const VISIBLE_HEADS: &str = "SELECT m.seq, m.id, m.group_id, m.dedup_id, m.body, m.attributes,
        m.sent_at, m.receive_count
    FROM queue_groups g JOIN queue_messages m ON m.seq = g.head_seq
    WHERE m.visible_at <= ?1
    ORDER BY g.head_seq LIMIT ?2";

/// When the earliest hidden head becomes visible (only asked when nothing
/// was visible, i.e. every group is in flight: few rows).
const NEXT_VISIBLE: &str = "SELECT MIN(m.visible_at)
    FROM queue_groups g JOIN queue_messages m ON m.seq = g.head_seq
    WHERE m.visible_at > ?1";

/// What one receive attempt found.
pub struct Attempt {
    pub messages: Vec<ReceivedMessage>,
    /// When the earliest in-flight head becomes visible again.
    pub next_visible_at: Option<i64>,
}

/// Deliver up to `max` visible heads (one per group), moving heads that
/// were already received `max_receive_count` times to the DLQ instead.
pub fn receive_now(
    conn: &Connection,
    max: usize,
    visibility: Duration,
    max_receive_count: u32,
) -> Result<Attempt> {
    let now = now_ms();
    let mut messages = Vec::new();
    loop {
        let want = i64::try_from(max - messages.len()).unwrap_or(10);
        let heads = conn
            .prepare_cached(VISIBLE_HEADS)
            .db()?
            .query_map(params![now, want], head_from_row)
            .db()?
            .collect::<rusqlite::Result<Vec<Head>>>()
            .db()?;
        let mut moved = false;
        for head in heads {
            if head.receive_count >= max_receive_count {
                let reason = format!("exceeded max receive count ({max_receive_count})");
                move_to_dlq(conn, head.seq, &reason, false, now)?;
                moved = true;
                continue;
            }
            let receipt = mint_receipt(head.seq);
            let count = head.receive_count + 1;
            conn.prepare_cached(
                "UPDATE queue_messages SET receipt = ?2, receive_count = ?3, visible_at = ?4
                 WHERE seq = ?1",
            )
            .db()?
            .execute(params![head.seq, receipt, count, now + dur_ms(visibility)])
            .db()?;
            messages.push(ReceivedMessage {
                message_id: head.id,
                receipt,
                group_id: head.group_id,
                dedup_id: head.dedup_id,
                body: head.body,
                attributes: attrs_from_json(&head.attributes)?,
                receive_count: count,
                sent_at: to_time(head.sent_at)?,
            });
        }
        // A move to the DLQ uncovers the next message of that group: look
        // again while there is room.
        if !moved || messages.len() >= max {
            break;
        }
    }
    let next_visible_at = if messages.is_empty() {
        conn.prepare_cached(NEXT_VISIBLE)
            .db()?
            .query_row([now], |r| r.get(0))
            .db()?
    } else {
        None
    };
    Ok(Attempt {
        messages,
        next_visible_at,
    })
}
