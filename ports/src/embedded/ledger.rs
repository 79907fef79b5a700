//! The idempotency ledger on SQLite: every call is one write job, so the
//! check and the write happen in one transaction on the single writer.
use std::cell::Cell;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::db::Db;
use super::sql::{SqlResult, dur_ms, now_ms, to_time};
use crate::{CreateOutcome, Ledger, LedgerRecord, LedgerState, PortError, Result};

#[derive(Debug, Clone)]
pub struct SqliteLedger {
    db: Db,
}

impl SqliteLedger {
    pub fn new(db: Db) -> Self {
        SqliteLedger { db }
    }
}

const SELECT: &str =
    "SELECT key, state, payload_hash, owner, created_at, in_progress_until, expires_at
    FROM ledger WHERE key = ?1";

fn load(conn: &Connection, key: &str) -> Result<Option<LedgerRecord>> {
    let raw = conn
        .prepare_cached(SELECT)
        .db()?
        .query_row([key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()
        .db()?;
    let Some((key, state, payload_hash, owner, created, until, expires)) = raw else {
        return Ok(None);
    };
    // Past `expires_at` a record counts as absent.
    if expires <= now_ms() {
        return Ok(None);
    }
    Ok(Some(LedgerRecord {
        key,
        state: LedgerState::parse(&state)
            .ok_or_else(|| PortError::Corrupt(format!("ledger state {state:?}")))?,
        payload_hash,
        owner,
        created_at: to_time(created)?,
        in_progress_until: to_time(until)?,
        expires_at: to_time(expires)?,
    }))
}

/// Creates between two sweeps of long-expired records (no TTL daemon), and
/// how many records a sweep may delete per create since the last one: more
/// than are created, so the table stays bounded, in one statement per
/// `SWEEP_EVERY` creates rather than one per create.
const SWEEP_EVERY: u32 = 64;
const SWEEP_PER_CREATE: u32 = 16;

thread_local! {
    /// Creates on this (the writer) thread since its last sweep.
    static CREATES_SINCE_SWEEP: Cell<u32> = const { Cell::new(0) };
}

fn sweep_expired(conn: &Connection, now: i64) -> Result<()> {
    let due = CREATES_SINCE_SWEEP.with(|n| {
        let seen = n.get() + 1;
        n.set(if seen >= SWEEP_EVERY { 0 } else { seen });
        seen >= SWEEP_EVERY
    });
    if due {
        conn.prepare_cached(
            "DELETE FROM ledger WHERE key IN
                 (SELECT key FROM ledger WHERE expires_at <= ?1 LIMIT ?2)",
        )
        .db()?
        .execute(params![now, SWEEP_EVERY * SWEEP_PER_CREATE])
        .db()?;
    }
    Ok(())
}

/// The conditional create, inside the caller's write job (also used by the
/// fused intake). A new key costs one insert; only a key already present
/// is read, to tell a live record from an expired one or a dead claim.
pub(super) fn try_create_in(
    conn: &Connection,
    key: &str,
    state: LedgerState,
    payload_hash: String,
    owner: String,
    in_progress_for: Duration,
    keep_for: Duration,
) -> Result<CreateOutcome> {
    let now = now_ms();
    sweep_expired(conn, now)?;
    let record = LedgerRecord {
        key: key.to_owned(),
        state,
        payload_hash,
        owner,
        created_at: to_time(now)?,
        in_progress_until: to_time(now + dur_ms(in_progress_for))?,
        expires_at: to_time(now.saturating_add(dur_ms(keep_for)))?,
    };
    let row = params![
        record.key,
        record.state.as_str(),
        record.payload_hash,
        record.owner,
        now,
        record.in_progress_until.timestamp_millis(),
        record.expires_at.timestamp_millis(),
    ];
    let created = conn
        .prepare_cached(
            "INSERT INTO ledger
                 (key, state, payload_hash, owner, created_at, in_progress_until, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key) DO NOTHING",
        )
        .db()?
        .execute(row)
        .db()?;
    if created == 1 {
        return Ok(CreateOutcome::Created(record));
    }
    // The key is taken: by a live record (answer it), a claim whose holder
    // ran out of time (take it over) or an expired record (counts as absent).
    let takeover = match load(conn, key)? {
        None => false,
        Some(r)
            if r.state == LedgerState::InProgress
                && r.in_progress_until.timestamp_millis() <= now =>
        {
            true
        }
        Some(r) => return Ok(CreateOutcome::Exists(r)),
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO ledger
             (key, state, payload_hash, owner, created_at, in_progress_until, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .db()?
    .execute(row)
    .db()?;
    Ok(if takeover {
        CreateOutcome::TakenOver(record)
    } else {
        CreateOutcome::Created(record)
    })
}

/// `InProgress` → `Enqueued` for `owner`, inside the caller's write job.
pub(super) fn mark_enqueued_in(conn: &Connection, key: &str, owner: &str) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE ledger SET state = 'enqueued'
             WHERE key = ?1 AND owner = ?2 AND state = 'in_progress' AND expires_at > ?3",
        )
        .db()?
        .execute(params![key, owner, now_ms()])
        .db()?;
    if n == 0 {
        return Err(PortError::ConditionFailed(
            "ledger record is not in progress under this owner".into(),
        ));
    }
    Ok(())
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn try_create(
        &self,
        key: &str,
        payload_hash: &str,
        owner: &str,
        in_progress_for: Duration,
        keep_for: Duration,
    ) -> Result<CreateOutcome> {
        crate::ledger::check_key(key)?;
        let (key, payload_hash, owner) =
            (key.to_owned(), payload_hash.to_owned(), owner.to_owned());
        self.db
            .write(move |conn| {
                try_create_in(
                    conn,
                    &key,
                    LedgerState::InProgress,
                    payload_hash.clone(),
                    owner.clone(),
                    in_progress_for,
                    keep_for,
                )
            })
            .await
    }

    async fn mark_enqueued(&self, key: &str, owner: &str) -> Result<()> {
        let (key, owner) = (key.to_owned(), owner.to_owned());
        self.db
            .write(move |conn| mark_enqueued_in(conn, &key, &owner))
            .await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<()> {
        let (key, owner) = (key.to_owned(), owner.to_owned());
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM ledger WHERE key = ?1 AND owner = ?2 AND state = 'in_progress'",
                    params![key, owner],
                )
                .db()?;
                Ok(())
            })
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>> {
        crate::ledger::check_key(key)?;
        let key = key.to_owned();
        self.db.read(move |conn| load(conn, &key)).await
    }
}
