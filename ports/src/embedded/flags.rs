//! Flags on SQLite: the current values plus an audit table whose highest
//! version is the flag-set version. A change and its audit row are one
//! savepoint.
use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::db::Db;
use super::sql::{SqlResult, now_ms, to_time, to_u64};
use crate::flags::validate;
use crate::{AuditEntry, FlagSet, FlagStore, Result};

#[derive(Debug, Clone)]
pub struct SqliteFlags {
    db: Db,
}

impl SqliteFlags {
    pub fn new(db: Db) -> Self {
        SqliteFlags { db }
    }
}

fn load(conn: &Connection) -> Result<FlagSet> {
    let version = to_u64(
        conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM flag_audit",
            [],
            |r| r.get(0),
        )
        .db()?,
    )?;
    let mut stmt = conn.prepare_cached("SELECT name, value FROM flags").db()?;
    let values = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .db()?
        .collect::<rusqlite::Result<BTreeMap<String, String>>>()
        .db()?;
    Ok(FlagSet { version, values })
}

#[async_trait]
impl FlagStore for SqliteFlags {
    async fn get_all(&self) -> Result<FlagSet> {
        self.db
            .read(|conn| {
                // One read transaction: values and version from one snapshot.
                conn.execute_batch("BEGIN").db()?;
                let out = load(conn);
                let end = conn.execute_batch("COMMIT").db();
                out.and_then(|set| end.map(|()| set))
            })
            .await
    }

    async fn set(&self, name: &str, value: &str, actor: &str, reason: &str) -> Result<FlagSet> {
        validate(name, value)?;
        let (name, value, actor, reason) = (
            name.to_owned(),
            value.to_owned(),
            actor.to_owned(),
            reason.to_owned(),
        );
        self.db
            .write(move |conn| {
                let old: Option<String> = conn
                    .query_row("SELECT value FROM flags WHERE name = ?1", [&name], |r| {
                        r.get(0)
                    })
                    .optional()
                    .db()?;
                let version: i64 = conn
                    .query_row(
                        "SELECT COALESCE(MAX(version), 0) FROM flag_audit",
                        [],
                        |r| r.get(0),
                    )
                    .db()?;
                conn.execute(
                    "INSERT INTO flags (name, value) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    params![name, value],
                )
                .db()?;
                conn.execute(
                    "INSERT INTO flag_audit (version, at, actor, reason, name, old, new)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![version + 1, now_ms(), actor, reason, name, old, value],
                )
                .db()?;
                load(conn)
            })
            .await
    }

    async fn history(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT version, at, actor, reason, name, old, new FROM flag_audit
                         ORDER BY version DESC LIMIT ?1",
                    )
                    .db()?;
                let rows = stmt
                    .query_map([limit], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, Option<String>>(5)?,
                            r.get::<_, String>(6)?,
                        ))
                    })
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .db()?;
                rows.into_iter()
                    .map(|(version, at, actor, reason, name, old, new)| {
                        Ok(AuditEntry {
                            version: to_u64(version)?,
                            at: to_time(at)?,
                            actor,
                            reason,
                            name,
                            old,
                            new,
                        })
                    })
                    .collect()
            })
            .await
    }
}
