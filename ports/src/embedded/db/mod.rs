//! The SQLite file: one writer thread with group commit, a small pool of
//! read connections, and the handle ([`Db`]) the SQL ports submit their
//! work through.
//!
//! Every write is a job sent to the writer thread. The thread takes the first
//! job, drains up to `max_batch - 1` more that are already queued, runs them
//! all in ONE transaction, COMMITs — one fsync with `synchronous=FULL` — and
//! only then answers each job. An answered write is therefore on disk.
//!
//! A job that fails must roll back only itself. The batch first runs
//! without savepoints (a savepoint copies every page a job touches into a
//! statement journal: ~10 % of the writer's instructions per ack). If a job
//! fails, the whole transaction is rolled back and the batch replayed with
//! each job inside its own SAVEPOINT. Jobs are therefore `FnMut`: they may
//! run twice, and only the last run's outcome counts.
//!
//! # Layout
//! - `connection.rs` — opening connections: pragmas, migration, WAL hook.
//! - `job.rs` — a write job, its answer, its savepoint.
//! - `writer.rs` — the writer thread: batch, commit, answer.
//! - `checkpoint.rs` — when and how the WAL is checkpointed.
//! - `readers.rs` — the pool of read connections.
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{PortError, Result};

mod checkpoint;
mod connection;
mod job;
mod readers;
mod writer;

pub use connection::open_and_migrate;

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "switchyard.sqlite";
/// Default number of jobs committed together.
pub const DEFAULT_MAX_BATCH: usize = 256;

/// Handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: Mutex<Option<writer::Jobs>>,
    readers: readers::Readers,
    max_batch: usize,
    /// What the writer did; read by the group-commit tests.
    #[cfg_attr(not(test), allow(dead_code))]
    counts: Arc<writer::WriterCounts>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .field("max_batch", &self.inner.max_batch)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping the sender ends the writer thread after its last batch.
        if let Ok(mut g) = self.jobs.lock() {
            g.take();
        }
    }
}

impl Db {
    /// Open (and migrate) the database and start the writer thread.
    pub fn open(path: &Path, max_batch: usize) -> Result<Db> {
        let (conn, wal_pages) = connection::open_writer(path)?;
        let checkpoints = checkpoint::Checkpoints::start(path)?;
        let max_batch = max_batch.max(1);
        let counts = Arc::new(writer::WriterCounts::default());
        let jobs = writer::Writer::new(conn, wal_pages, checkpoints, Arc::clone(&counts))
            .spawn(max_batch)?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                jobs: Mutex::new(Some(jobs)),
                readers: readers::Readers::new(path.to_owned()),
                max_batch,
                counts,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Most jobs committed in one transaction.
    pub fn max_batch(&self) -> usize {
        self.inner.max_batch
    }

    /// Write transactions committed so far (one fsync each).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn commits(&self) -> u64 {
        self.inner.counts.commits.load(Ordering::Relaxed)
    }

    /// Batches replayed job by job because a job in them failed.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn replays(&self) -> u64 {
        self.inner.counts.replays.load(Ordering::Relaxed)
    }

    /// Run `f` on the writer thread as part of the current group
    /// transaction. Resolves once the transaction is committed (durable).
    /// `f` may run twice (see the module notes): it must not consume what
    /// it captures.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<Result<T>>();
        let job: Box<dyn job::Job> = Box::new(job::Pending::new(f, reply));
        {
            let guard = self
                .inner
                .jobs
                .lock()
                .map_err(|_| PortError::Unavailable("writer lock poisoned".into()))?;
            let sender = guard
                .as_ref()
                .ok_or_else(|| PortError::Unavailable("database closed".into()))?;
            sender
                .send(job)
                .map_err(|_| PortError::Unavailable("sqlite writer thread stopped".into()))?;
        }
        rx.await
            .map_err(|_| PortError::Unavailable("sqlite writer dropped the job".into()))?
    }

    /// Run `f` on a read connection (off the async runtime). Reads see every
    /// committed write and never wait for the writer.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.readers.run(f))
            .await
            .map_err(|e| PortError::Unavailable(format!("read task failed: {e}")))?
    }
}
