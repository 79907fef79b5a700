//! Schema migrations: an ordered list, applied once each, tracked in
//! SQLite's `user_version`. Never edit a shipped migration; append one.
use rusqlite::{Connection, TransactionBehavior};

use super::sql::SqlResult;
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
    // 2: queue_messages without its two UNIQUE indexes (and with a small
    // partial index of messages in flight instead). Nothing looks a
    // message up by id, and a receipt now names its row (`<seq>.<nonce>`),
    // so each index only cost a random B-tree page per send, receive and
    // delete. SQLite cannot drop a column constraint: rebuild the table
    // (seq values, hence FIFO order and AUTOINCREMENT's high mark, kept).
    r#"
    CREATE TABLE queue_messages_v2 (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        id            TEXT    NOT NULL,
        group_id      TEXT    NOT NULL,
        dedup_id      TEXT    NOT NULL,
        body          TEXT    NOT NULL,
        attributes    TEXT    NOT NULL,
        sent_at       INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        visible_at    INTEGER NOT NULL DEFAULT 0,
        receipt       TEXT
    );
    INSERT INTO queue_messages_v2
        (seq, id, group_id, dedup_id, body, attributes, sent_at, receive_count, visible_at, receipt)
        SELECT seq, id, group_id, dedup_id, body, attributes, sent_at, receive_count, visible_at, receipt
        FROM queue_messages;
    DELETE FROM sqlite_sequence WHERE name = 'queue_messages_v2';
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'queue_messages_v2', seq FROM sqlite_sequence WHERE name = 'queue_messages';
    DROP TABLE queue_messages;
    ALTER TABLE queue_messages_v2 RENAME TO queue_messages;
    CREATE INDEX queue_messages_group ON queue_messages (group_id, seq);
    -- Messages in flight, for `stats` without a scan of the backlog. Keys
    -- are "now + visibility", so entries land on the same few pages.
    CREATE INDEX queue_in_flight ON queue_messages (visible_at) WHERE receipt IS NOT NULL;
    "#,
    // 3: the event log and the projections as rowid tables. In a WITHOUT
    // ROWID table the whole ~0.5–1 KB row lives in the key-ordered tree, so
    // every append or new stream lands on a random leaf that holds four or
    // five rows and splits every few inserts. Here the rows go in append
    // order (a commit's appends share the tail pages) and only small
    // (stream, seq) and event-id index entries land on random leaves: the
    // worker writes ~45 % more log events per second (docs/performance.md).
    // `pos` is the log's global append order; rows keep their order.
    r#"
    CREATE TABLE events_v3 (
        pos         INTEGER PRIMARY KEY,
        stream      TEXT    NOT NULL,
        seq         INTEGER NOT NULL,
        event_id    TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        body        TEXT    NOT NULL,
        recorded_at INTEGER NOT NULL
    );
    INSERT INTO events_v3 (stream, seq, event_id, kind, body, recorded_at)
        SELECT stream, seq, event_id, kind, body, recorded_at FROM events
        ORDER BY recorded_at, stream, seq;
    DROP TABLE events;
    ALTER TABLE events_v3 RENAME TO events;
    CREATE UNIQUE INDEX events_stream_seq ON events (stream, seq);
    CREATE UNIQUE INDEX events_event_id ON events (event_id);
    CREATE TABLE projections_v3 (
        stream  TEXT    NOT NULL PRIMARY KEY,
        version INTEGER NOT NULL,
        state   TEXT    NOT NULL
    );
    INSERT INTO projections_v3 (stream, version, state)
        SELECT stream, version, state FROM projections;
    DROP TABLE projections;
    ALTER TABLE projections_v3 RENAME TO projections;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of `sql`, mapped by `row`.
    fn all<T>(
        conn: &Connection,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        conn.prepare(sql)
            .expect("sqlite")
            .query_map([], row)
            .expect("sqlite")
            .collect::<rusqlite::Result<_>>()
            .expect("sqlite")
    }

    /// A version-1 file with a backlog (one message in flight) migrates to
    /// the current schema with every row, its order and the sequence's high
    /// mark kept, and without the dropped indexes.
    #[test]
    fn a_version_1_queue_migrates_with_its_rows_and_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("db")).expect("sqlite");
        conn.execute_batch(MIGRATIONS[0]).expect("sqlite");
        conn.pragma_update(None, "user_version", 1).expect("sqlite");
        for (seq, group) in [(7, "a"), (8, "b"), (9, "a")] {
            conn.execute(
                "INSERT INTO queue_messages (seq, id, group_id, dedup_id, body, attributes, sent_at, receipt)
                 VALUES (?1, ?2, ?3, ?2, 'body', '{}', 0, CASE WHEN ?1 = 8 THEN 'old-receipt' END)",
                rusqlite::params![seq, format!("m{seq}"), group],
            )
            .expect("sqlite");
        }
        // The highest seq was taken and its row deleted: it must not return.
        conn.execute("DELETE FROM queue_messages WHERE seq = 9", [])
            .expect("sqlite");
        conn.execute(
            "UPDATE sqlite_sequence SET seq = 12 WHERE name = 'queue_messages'",
            [],
        )
        .expect("sqlite");

        assert_eq!(migrate(&mut conn).expect("migrates"), (1, CURRENT));

        let rows: Vec<(i64, String, Option<String>)> = all(
            &conn,
            "SELECT seq, id, receipt FROM queue_messages ORDER BY seq",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        );
        assert_eq!(
            rows,
            vec![
                (7, "m7".to_owned(), None),
                (8, "m8".to_owned(), Some("old-receipt".to_owned()))
            ]
        );
        let unique: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_index_list('queue_messages') WHERE \"unique\" = 1",
                [],
                |r| r.get(0),
            )
            .expect("sqlite");
        assert_eq!(unique, 0, "no unique index left on queue_messages");
        conn.execute(
            "INSERT INTO queue_messages (id, group_id, dedup_id, body, attributes, sent_at)
             VALUES ('new', 'c', 'new', 'body', '{}', 0)",
            [],
        )
        .expect("sqlite");
        assert_eq!(
            conn.last_insert_rowid(),
            13,
            "AUTOINCREMENT's high mark kept"
        );
        let group_index: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_index_list('queue_messages') WHERE name = 'queue_messages_group'",
                [],
                |r| r.get(0),
            )
            .expect("sqlite");
        assert_eq!(group_index, 1);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM queue_messages
                 WHERE receipt IS NOT NULL AND visible_at > 0",
                [],
                |r| r.get(3),
            )
            .expect("sqlite");
        assert!(plan.contains("queue_in_flight"), "{plan}");
    }

    /// A version-2 log (WITHOUT ROWID events and projections) migrates to
    /// rowid tables: every event, projection and order kept, the table in
    /// append order, and both uniqueness rules still enforced.
    #[test]
    fn a_version_2_log_migrates_to_append_ordered_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("db")).expect("sqlite");
        conn.execute_batch(MIGRATIONS[0]).expect("sqlite");
        conn.execute_batch(MIGRATIONS[1]).expect("sqlite");
        conn.pragma_update(None, "user_version", 2).expect("sqlite");
        // Stream "b" was written first although it sorts after "a".
        let events = [
            ("b", 1, "e-b1", 100),
            ("a", 1, "e-a1", 200),
            ("b", 2, "e-b2", 300),
            ("a", 2, "e-a2", 400),
        ];
        for (stream, seq, id, at) in events {
            conn.execute(
                "INSERT INTO events (stream, seq, event_id, kind, body, recorded_at)
                 VALUES (?1, ?2, ?3, 'MessageReceived', ?4, ?5)",
                rusqlite::params![stream, seq, id, format!("{{\"id\":\"{id}\"}}"), at],
            )
            .expect("sqlite");
        }
        for stream in ["a", "b"] {
            conn.execute(
                "INSERT INTO projections (stream, version, state) VALUES (?1, 2, ?2)",
                rusqlite::params![stream, format!("state of {stream}")],
            )
            .expect("sqlite");
        }

        assert_eq!(migrate(&mut conn).expect("migrates"), (2, CURRENT));

        let rows: Vec<(i64, String, i64, String, String, i64)> = all(
            &conn,
            "SELECT pos, stream, seq, event_id, body, recorded_at FROM events ORDER BY pos",
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        );
        let got: Vec<(&str, i64, &str, i64)> = rows
            .iter()
            .map(|(_, s, q, id, _, at)| (s.as_str(), *q, id.as_str(), *at))
            .collect();
        assert_eq!(got, events.to_vec(), "rows kept, in append order");
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(rows[0].4, "{\"id\":\"e-b1\"}");
        let states: Vec<(String, i64, String)> = all(
            &conn,
            "SELECT stream, version, state FROM projections ORDER BY stream",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        );
        assert_eq!(
            states,
            vec![
                ("a".to_owned(), 2, "state of a".to_owned()),
                ("b".to_owned(), 2, "state of b".to_owned())
            ]
        );
        for table in ["events", "projections"] {
            let without_rowid: i64 = conn
                .query_row("SELECT wr FROM pragma_table_list(?1)", [table], |r| {
                    r.get(0)
                })
                .expect("sqlite");
            assert_eq!(without_rowid, 0, "{table} is a rowid table");
        }
        let insert = |stream: &str, seq: i64, id: &str| {
            conn.execute(
                "INSERT INTO events (stream, seq, event_id, kind, body, recorded_at)
                 VALUES (?1, ?2, ?3, 'k', '{}', 500)",
                rusqlite::params![stream, seq, id],
            )
        };
        assert!(
            insert("a", 2, "fresh").is_err(),
            "(stream, seq) stays unique"
        );
        assert!(insert("a", 3, "e-b1").is_err(), "event ids stay unique");
        insert("a", 3, "e-a3").expect("a new event appends");
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT seq, body FROM events WHERE stream = 'a' AND seq > 1 ORDER BY seq",
                [],
                |r| r.get(3),
            )
            .expect("sqlite");
        assert!(plan.contains("events_stream_seq"), "{plan}");
        conn.execute(
            "INSERT INTO projections (stream, version, state) VALUES ('a', 3, 'x')
             ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state",
            [],
        )
        .expect("the projection upsert still finds its key");
    }
}
