//! Schema migrations: an ordered list, applied once each, tracked in
//! SQLite's `user_version`. Never edit a shipped migration; append one.
use rusqlite::{Connection, TransactionBehavior};

use super::db::SqlResult;
use crate::{PortError, Result};

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: every table of every port.
    r#"
    CREATE TABLE queue_messages (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        id            TEXT    NOT NULL UNIQUE,
        group_id      TEXT    NOT NULL,
        dedup_id      TEXT    NOT NULL,
        body          TEXT    NOT NULL,
        attributes    TEXT    NOT NULL,
        sent_at       INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        visible_at    INTEGER NOT NULL DEFAULT 0,
        receipt       TEXT    UNIQUE
    );
    CREATE INDEX queue_messages_group ON queue_messages (group_id, seq);
    -- One row per group with messages: its head (smallest seq). A receive
    -- walks heads in seq order, so it costs O(max + groups in flight), not
    -- O(backlog).
    CREATE TABLE queue_groups (
        group_id TEXT    PRIMARY KEY,
        head_seq INTEGER NOT NULL UNIQUE
    ) WITHOUT ROWID;
    CREATE TABLE queue_dedup (
        dedup_id TEXT    PRIMARY KEY,
        sent_at  INTEGER NOT NULL
    );
    CREATE INDEX queue_dedup_age ON queue_dedup (sent_at);
    CREATE TABLE queue_dlq (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        id            TEXT    NOT NULL UNIQUE,
        group_id      TEXT    NOT NULL,
        dedup_id      TEXT    NOT NULL,
        body          TEXT    NOT NULL,
        attributes    TEXT    NOT NULL,
        reason        TEXT    NOT NULL,
        receive_count INTEGER NOT NULL,
        sent_at       INTEGER NOT NULL,
        dead_at       INTEGER NOT NULL
    );
    CREATE TABLE ledger (
        key               TEXT    PRIMARY KEY,
        state             TEXT    NOT NULL,
        payload_hash      TEXT    NOT NULL,
        owner             TEXT    NOT NULL,
        created_at        INTEGER NOT NULL,
        in_progress_until INTEGER NOT NULL,
        expires_at        INTEGER NOT NULL
    );
    CREATE INDEX ledger_expiry ON ledger (expires_at);
    CREATE TABLE events (
        stream      TEXT    NOT NULL,
        seq         INTEGER NOT NULL,
        event_id    TEXT    NOT NULL UNIQUE,
        kind        TEXT    NOT NULL,
        body        TEXT    NOT NULL,
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (stream, seq)
    ) WITHOUT ROWID;
    CREATE TABLE projections (
        stream  TEXT    PRIMARY KEY,
        version INTEGER NOT NULL,
        state   TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE flags (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE flag_audit (
        version INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        actor   TEXT    NOT NULL,
        reason  TEXT    NOT NULL,
        name    TEXT    NOT NULL,
        old     TEXT,
        new     TEXT    NOT NULL
    );
    "#,
];

/// The schema version this build writes.
pub const CURRENT: u32 = MIGRATIONS.len() as u32;

/// Apply the missing migrations, each in its own immediate transaction
/// (so two openers racing cannot apply one twice). Returns the version found
/// and the version now. Refuses a file from a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(u32, u32)> {
    let found = version(conn)?;
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let now = version(&tx)?;
        if now > CURRENT {
            return Err(PortError::Corrupt(format!(
                "database schema version {now} is newer than this build ({CURRENT}); upgrade switchyard"
            )));
        }
        let Some(sql) = MIGRATIONS.get(now as usize) else {
            tx.commit().db()?;
            return Ok((found, now));
        };
        tx.execute_batch(sql).db()?;
        tx.pragma_update(None, "user_version", now + 1).db()?;
        tx.commit().db()?;
    }
}

fn version(conn: &Connection) -> Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).db()
}
