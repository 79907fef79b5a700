//! Embedded adapters: every port on one SQLite file in the data dir, plus
//! files for secrets and blobs. The default backend.
//!
//! # Layout
//! - `db/` — the SQLite file: writer thread with group commit, read pool.
//! - `sql.rs` — SQLite errors as port errors; times and counts as columns.
//! - `schema.rs` — migrations (`user_version`).
//! - `queue.rs` (+ `queue_sql.rs`, row helpers), `ledger.rs`, `events.rs`, `flags.rs` — the SQL ports.
//! - `intake.rs` — ledger claim + send + mark in one write job.
//! - `files.rs` — secrets (env var or 0600 file) and blobs (a directory).
//!
//! # Durability
//! WAL mode with `synchronous=FULL`: a write is answered only after the
//! COMMIT of its batch returned, and FULL makes that COMMIT fsync the WAL.
//! An acknowledged write therefore survives `kill -9` and power loss
//! (assuming the disk honours fsync). Throughput comes from group commit:
//! concurrent writes share one transaction and one fsync. See
//! `docs/durability.md`.
use std::path::Path;
use std::sync::Arc;

use crate::{Backend, EmbeddedSettings, PortError, Result, Secrets};

mod db;
mod events;
mod files;
mod flags;
mod intake;
mod ledger;
mod queue;
mod queue_sql;
mod schema;
mod sql;

pub use db::{DB_FILE, DEFAULT_MAX_BATCH};
pub use files::SECRET_ENV_PREFIX;

/// Tuning knobs of the embedded backend that are not part of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Most write jobs committed in one transaction (one fsync). 1 turns
    /// group commit off (one fsync per write), for comparison only.
    pub max_batch: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_batch: DEFAULT_MAX_BATCH,
        }
    }
}

/// Open the embedded backend (creating and migrating the data dir).
pub async fn open(s: &EmbeddedSettings) -> Result<Backend> {
    open_tuned(s, Tuning::default()).await
}

/// [`open`] with explicit tuning (the append benchmark turns batching off).
pub async fn open_tuned(s: &EmbeddedSettings, tuning: Tuning) -> Result<Backend> {
    let settings = s.clone();
    let db = tokio::task::spawn_blocking(move || {
        create_dirs(&settings.data_dir)?;
        db::Db::open(&settings.data_dir.join(DB_FILE), tuning.max_batch)
    })
    .await
    .map_err(|e| PortError::Unavailable(format!("open task failed: {e}")))??;
    let dir = &s.data_dir;
    let queue = queue::SqliteQueue::new(db.clone(), s.max_receive_count, s.dedup_window);
    Ok(Backend {
        intake: Arc::new(intake::SqliteIntake::new(db.clone(), queue.clone())),
        queue: Arc::new(queue),
        ledger: Arc::new(ledger::SqliteLedger::new(db.clone())),
        events: Arc::new(events::SqliteEvents::new(db.clone())),
        flags: Arc::new(flags::SqliteFlags::new(db.clone())),
        secrets: Secrets::new(
            Arc::new(files::FileSecrets::new(dir.join("secrets"))),
            s.secrets_ttl,
        ),
        blobs: Arc::new(crate::AllowedBuckets::new(
            Arc::new(files::DirBlobs::new(dir.join("blobs"))),
            s.raw_mail_buckets.clone(),
        )),
        fleet: None,
        messaging_system: "switchyard_sqlite",
        description: format!(
            "embedded SQLite at {} (WAL, synchronous=FULL, group commit of up to {})",
            db.path().display(),
            db.max_batch()
        ),
    })
}

fn create_dirs(dir: &Path) -> Result<()> {
    for d in [dir.to_owned(), dir.join("blobs"), dir.join("secrets")] {
        std::fs::create_dir_all(&d)
            .map_err(|e| PortError::Unavailable(format!("cannot create {}: {e}", d.display())))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secrets = dir.join("secrets");
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).map_err(
            |e| PortError::Unavailable(format!("cannot restrict {}: {e}", secrets.display())),
        )?;
    }
    Ok(())
}

/// Create the data dir and schema if missing (idempotent). One line per
/// thing created or found.
pub async fn provision(s: &EmbeddedSettings) -> Result<Vec<String>> {
    let dir = s.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for (d, what) in [
            (dir.clone(), "data dir"),
            (dir.join("blobs"), "blob dir"),
            (dir.join("secrets"), "secrets dir"),
        ] {
            let verb = if d.is_dir() { "found" } else { "created" };
            lines.push(format!("{verb} {what} {}", d.display()));
        }
        create_dirs(&dir)?;
        let path = dir.join(DB_FILE);
        let existed = path.exists();
        let (_conn, from, to) = db::open_and_migrate(&path)?;
        lines.push(match (existed, from == to) {
            (false, _) => format!("created database {} (schema v{to})", path.display()),
            (true, true) => format!(
                "found database {} (schema v{to}, up to date)",
                path.display()
            ),
            (true, false) => format!(
                "migrated database {} from schema v{from} to v{to}",
                path.display()
            ),
        });
        Ok(lines)
    })
    .await
    .map_err(|e| PortError::Unavailable(format!("provision task failed: {e}")))?
}

#[cfg(test)]
mod tests;
