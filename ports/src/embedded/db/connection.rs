//! Opening connections: the pragmas every connection needs, the schema
//! migration on open, and the writer's own connection with its WAL hook.
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use super::super::schema;
use super::super::sql::SqlResult;
use crate::{PortError, Result};

/// Open a connection with the pragmas every connection needs.
pub(super) fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).db()?;
    conn.busy_timeout(Duration::from_secs(5)).db()?;
    // WAL: readers never block the writer; FULL: the WAL is fsync'd at every
    // COMMIT, so a committed transaction survives power loss.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(PortError::Unavailable(format!(
            "sqlite refused WAL mode (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    conn.pragma_update(None, "foreign_keys", "ON").db()?;
    // A replayed batch runs each job in a SAVEPOINT: keep its statement
    // journal in memory instead of a temp file (discarded at COMMIT).
    conn.pragma_update(None, "temp_store", "MEMORY").db()?;
    // Every hot statement is prepared once per connection. Without the
    // query planner stability guarantee, SQLite re-prepares a statement
    // whenever a parameter its plan may depend on is bound again — for a
    // `LIMIT ?` that is every execution (the worker's receive, the ledger
    // sweep). The plans here do not depend on the values.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .db()?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Open the database file and bring its schema up to date. Returns the
/// connection and the schema versions before and after.
pub fn open_and_migrate(path: &Path) -> Result<(Connection, u32, u32)> {
    let mut conn = connect(path)?;
    let (from, to) = schema::migrate(&mut conn)?;
    Ok((conn, from, to))
}

/// The writer's connection (migrated), and the WAL's size in pages after
/// its latest commit, kept up to date by a WAL hook.
pub(super) fn open_writer(path: &Path) -> Result<(Connection, Arc<AtomicI64>)> {
    let (mut conn, _, _) = open_and_migrate(path)?;
    // Checkpoints: SQLite's automatic one (every 1,000 WAL pages) runs
    // inside COMMIT, so the batch that crosses the mark waits for pages
    // to be copied back and the database file fsync'd before it is
    // answered. Instead the writer checkpoints itself right AFTER
    // answering a batch (same PASSIVE checkpoint, same interval; no
    // concurrent writer, so it completes and the WAL restarts). Setting
    // our own WAL hook replaces the automatic checkpoint.
    let wal_pages = Arc::new(AtomicI64::new(0));
    let seen = Arc::clone(&wal_pages);
    conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
        seen.store(i64::from(pages), Ordering::Relaxed);
        Ok(())
    }))
    .db()?;
    // The writer's page cache survives between its own transactions
    // (readers' caches are reset by every commit), so give it room for
    // the hot B-tree pages: 8 MiB (SQLite's default is 2), allocated
    // only as pages are used. Counted in serve's RSS budget (< 60 MB).
    // (A larger checkpoint interval and PASSIVE checkpoints on a thread
    // of their own were both measured: longer commit stalls, and a WAL
    // that never restarts under sustained writes.)
    conn.pragma_update(None, "cache_size", -8_192).db()?;
    Ok((conn, wal_pages))
}
