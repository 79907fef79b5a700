//! The event log on SQLite: an append is one savepoint in the group commit
//! that checks the stream version, checks every event id, inserts the events
//! and upserts the projection — all or nothing.
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::db::Db;
use super::sql::{SqlResult, now_ms, to_i64, to_time, to_u64};
use crate::{EventStore, NewEvent, PortError, Result, StoredEvent, StoredProjection};

#[derive(Debug, Clone)]
pub struct SqliteEvents {
    db: Db,
}

impl SqliteEvents {
    pub fn new(db: Db) -> Self {
        SqliteEvents { db }
    }
}

fn version_of(conn: &rusqlite::Connection, stream: &str) -> Result<u64> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT version FROM projections WHERE stream = ?1")
        .db()?
        .query_row([stream], |r| r.get(0))
        .optional()
        .db()?;
    v.map_or(Ok(0), to_u64)
}

#[async_trait]
impl EventStore for SqliteEvents {
    async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
        projection: String,
    ) -> Result<u64> {
        crate::events::check_append(stream, &events)?;
        let stream = stream.to_owned();
        self.db
            .write(move |conn| {
                let actual = version_of(conn, &stream)?;
                if actual != expected_version {
                    return Err(PortError::SequenceConflict {
                        stream: stream.clone(),
                        expected: expected_version,
                        actual,
                    });
                }
                for e in &events {
                    let seen: Option<i64> = conn
                        .prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")
                        .db()?
                        .query_row([&e.event_id], |r| r.get(0))
                        .optional()
                        .db()?;
                    if seen.is_some() {
                        return Err(PortError::AlreadyAppended {
                            event_id: e.event_id.clone(),
                        });
                    }
                }
                let now = now_ms();
                let mut seq = expected_version;
                {
                    let mut insert = conn
                        .prepare_cached(
                            "INSERT INTO events (stream, seq, event_id, kind, body, recorded_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )
                        .db()?;
                    for e in &events {
                        seq += 1;
                        insert
                            .execute(params![stream, to_i64(seq)?, e.event_id, e.kind, e.body, now])
                            .db()?;
                    }
                }
                conn.prepare_cached(
                    "INSERT INTO projections (stream, version, state) VALUES (?1, ?2, ?3)
                     ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state",
                )
                .db()?
                .execute(params![stream, to_i64(seq)?, projection])
                .db()?;
                Ok(seq)
            })
            .await
    }

    async fn read_stream(&self, stream: &str, after: u64) -> Result<Vec<StoredEvent>> {
        let stream = stream.to_owned();
        let after = to_i64(after)?;
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, event_id, kind, body, recorded_at FROM events
                         WHERE stream = ?1 AND seq > ?2 ORDER BY seq",
                    )
                    .db()?;
                let rows = stmt
                    .query_map(params![stream, after], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    })
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .db()?;
                rows.into_iter()
                    .map(|(seq, event_id, kind, body, at)| {
                        Ok(StoredEvent {
                            stream: stream.clone(),
                            seq: to_u64(seq)?,
                            event_id,
                            kind,
                            body,
                            recorded_at: to_time(at)?,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn projection(&self, stream: &str) -> Result<Option<StoredProjection>> {
        let stream = stream.to_owned();
        self.db
            .read(move |conn| {
                let row: Option<(i64, String)> = conn
                    .prepare_cached("SELECT version, state FROM projections WHERE stream = ?1")
                    .db()?
                    .query_row([&stream], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .db()?;
                row.map(|(version, state)| {
                    Ok(StoredProjection {
                        stream: stream.clone(),
                        version: to_u64(version)?,
                        state,
                    })
                })
                .transpose()
            })
            .await
    }

    async fn put_projection(&self, stream: &str, version: u64, state: String) -> Result<()> {
        let stream = stream.to_owned();
        let v = to_i64(version)?;
        self.db
            .write(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE projections SET state = ?3 WHERE stream = ?1 AND version = ?2",
                        params![stream, v, state],
                    )
                    .db()?;
                if n == 0 {
                    return Err(PortError::ConditionFailed(format!(
                        "projection of {stream} is not at version {version}"
                    )));
                }
                Ok(())
            })
            .await
    }

    async fn list_streams(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let after = after.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT stream FROM projections WHERE ?1 IS NULL OR stream > ?1
                         ORDER BY stream LIMIT ?2",
                    )
                    .db()?;
                stmt.query_map(params![after, limit], |r| r.get(0))
                    .db()?
                    .collect::<rusqlite::Result<Vec<String>>>()
                    .db()
            })
            .await
    }

    async fn contains_event(&self, event_id: &str) -> Result<bool> {
        let event_id = event_id.to_owned();
        self.db
            .read(move |conn| {
                let n: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM events WHERE event_id = ?1",
                        [&event_id],
                        |r| r.get(0),
                    )
                    .db()?;
                Ok(n > 0)
            })
            .await
    }
}
