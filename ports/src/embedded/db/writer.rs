//! The writer thread: takes the queued write jobs in batches, runs each
//! batch in one transaction (replayed job by job in savepoints if a job
//! fails), commits it — one fsync — and only then answers its jobs; then
//! checkpoints when due.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use rusqlite::Connection;

use super::super::sql::SqlResult;
use super::checkpoint::Checkpoints;
use super::job::Job;
use crate::{PortError, Result, metrics};

/// Counts kept by the writer thread.
#[derive(Default)]
pub(super) struct WriterCounts {
    /// Transactions committed (each is one fsync).
    pub commits: AtomicU64,
    /// Batches replayed with one savepoint per job.
    pub replays: AtomicU64,
}

/// The writer thread's state.
pub(super) struct Writer {
    conn: Connection,
    /// The WAL's size in pages after the latest commit (set by its hook).
    wal_pages: Arc<AtomicI64>,
    /// The WAL's size after the previous commit.
    wal_before: i64,
    checkpoints: Checkpoints,
    counts: Arc<WriterCounts>,
}

/// The channel write jobs are sent to the writer on.
pub(super) type Jobs = mpsc::Sender<Box<dyn Job>>;

impl Writer {
    /// A writer on `conn` (see `connection::open_writer`).
    pub fn new(
        conn: Connection,
        wal_pages: Arc<AtomicI64>,
        checkpoints: Checkpoints,
        counts: Arc<WriterCounts>,
    ) -> Self {
        Writer {
            conn,
            wal_pages,
            wal_before: 0,
            checkpoints,
            counts,
        }
    }

    /// Start the thread; it commits up to `max_batch` jobs at a time and
    /// ends once every sender of the returned channel is gone.
    pub fn spawn(self, max_batch: usize) -> Result<Jobs> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("switchyard-sqlite-writer".into())
            .spawn(move || self.run(&rx, max_batch))
            .map_err(|e| PortError::Unavailable(format!("cannot start writer thread: {e}")))?;
        Ok(tx)
    }

    fn run(mut self, rx: &mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
        let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE").db() {
                tracing::warn!(error = %e, jobs = batch.len(), "sqlite: cannot begin a write batch");
                // Run nothing: each job is dropped unrun, which drops its reply
                // channel, so every caller sees `Unavailable`.
                batch.clear();
                continue;
            }
            let committed = self.run_and_commit(&mut batch);
            for job in batch.drain(..) {
                job.finish(match &committed {
                    Ok(()) => Ok(()),
                    Err(e) => Err(PortError::Unavailable(format!("commit failed: {e}"))),
                });
            }
            // Answered: now the checkpoint, if one is due.
            let pages = self.wal_pages.load(Ordering::Relaxed);
            if self.checkpoints.after_batch(&self.conn, pages) {
                self.wal_before = 0;
            }
        }
    }

    /// Run the batch in the open transaction — replayed if a job fails —
    /// and COMMIT it; a batch that cannot commit is rolled back.
    fn run_and_commit(&mut self, batch: &mut [Box<dyn Job>]) -> Result<()> {
        // Stops at the first failure.
        let all_ok = batch.iter_mut().all(|job| job.run(&self.conn, false));
        let ready = if all_ok { Ok(()) } else { self.replay(batch) };
        let committing = Instant::now();
        let committed = ready.and_then(|()| self.conn.execute_batch("COMMIT").db());
        if committed.is_ok() {
            self.count_commit(batch.len(), committing);
        } else {
            tracing::warn!(
                jobs = batch.len(),
                "sqlite: commit failed; batch rolled back"
            );
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        committed
    }

    /// Roll the batch back and run it again, each job in a savepoint of
    /// its own, so a failed job rolls back only itself.
    fn replay(&self, batch: &mut [Box<dyn Job>]) -> Result<()> {
        self.counts.replays.fetch_add(1, Ordering::Relaxed);
        metrics::sqlite_replay();
        self.conn
            .execute_batch("ROLLBACK; BEGIN IMMEDIATE")
            .db()
            .map(|()| {
                for job in batch {
                    job.run(&self.conn, true);
                }
            })
    }

    /// Count a commit of `jobs` jobs begun at `since`, and what it wrote.
    fn count_commit(&mut self, jobs: usize, since: Instant) {
        self.counts.commits.fetch_add(1, Ordering::Relaxed);
        // The WAL's size in frames after this commit (the hook's count
        // starts again after a restart): what this commit wrote.
        let pages = self.wal_pages.load(Ordering::Relaxed);
        let frames = if pages >= self.wal_before {
            pages - self.wal_before
        } else {
            pages
        };
        self.wal_before = pages;
        metrics::sqlite_commit(jobs, frames, since);
    }
}
