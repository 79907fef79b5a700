//! The SQLite file: one writer thread with group commit, a small pool of
//! read connections, and the translation of SQLite errors into port errors.
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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use tokio::sync::oneshot;

use crate::{PortError, Result};

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "switchyard.sqlite";
/// Default number of jobs committed together.
pub const DEFAULT_MAX_BATCH: usize = 256;
const MAX_IDLE_READERS: usize = 4;

/// Turn a SQLite error into a port error: I/O, locking and the like are
/// transient; data that cannot be decoded is corrupt.
pub fn sql_err(e: rusqlite::Error) -> PortError {
    use rusqlite::Error as E;
    match e {
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(..) => PortError::Corrupt(e.to_string()),
        E::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseCorrupt => {
            PortError::Corrupt(e.to_string())
        }
        _ => PortError::Unavailable(format!("sqlite: {e}")),
    }
}

/// Extension: `?` on rusqlite results inside jobs.
pub trait SqlResult<T> {
    fn db(self) -> Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(sql_err)
    }
}

/// Open a connection with the pragmas every connection needs.
fn connect(path: &Path) -> Result<Connection> {
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
    let (from, to) = super::schema::migrate(&mut conn)?;
    Ok((conn, from, to))
}

/// A write job as the writer thread sees it.
trait Job: Send {
    /// Run the job's statements, inside a savepoint of its own when
    /// `isolated`. False if the job failed.
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool;
    /// Answer the caller once the batch's commit is known.
    fn finish(self: Box<Self>, commit: Result<()>);
}

/// A job's closure, its latest outcome and where to send the answer.
struct Pending<T, F> {
    f: F,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool {
        let outcome = if isolated {
            run_in_savepoint(conn, &mut self.f)
        } else {
            (self.f)(conn)
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let answer = match (commit, self.outcome) {
            // A failed job rolled back only itself; its error stands.
            (_, Some(Err(e))) => Err(e),
            (Err(e), _) => Err(e),
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Ok(()), None) => Err(PortError::Unavailable("write job never ran".into())),
        };
        // The caller may have gone away (cancelled); nothing to do.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    readers: Mutex<Vec<Connection>>,
    max_batch: usize,
    /// What the writer did; read by the group-commit tests.
    #[cfg_attr(not(test), allow(dead_code))]
    counts: Arc<WriterCounts>,
}

/// Counts kept by the writer thread.
#[derive(Default)]
struct WriterCounts {
    /// Transactions committed (each is one fsync).
    commits: AtomicU64,
    /// Batches replayed with one savepoint per job.
    replays: AtomicU64,
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
        let bulk = Checkpointer::start(path)?;
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let max_batch = max_batch.max(1);
        let counts = Arc::new(WriterCounts::default());
        let counter = Arc::clone(&counts);
        std::thread::Builder::new()
            .name("switchyard-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, &counter, &wal_pages, &bulk))
            .map_err(|e| PortError::Unavailable(format!("cannot start writer thread: {e}")))?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                jobs: Mutex::new(Some(tx)),
                readers: Mutex::new(Vec::new()),
                max_batch,
                counts,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

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
        let job: Box<dyn Job> = Box::new(Pending {
            f,
            outcome: None,
            reply,
        });
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
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut v| v.pop());
            let conn = match pooled {
                Some(c) => c,
                None => connect(&inner.path)?,
            };
            let out = f(&conn);
            if let Ok(mut v) = inner.readers.lock()
                && v.len() < MAX_IDLE_READERS
            {
                v.push(conn);
            }
            out
        })
        .await
        .map_err(|e| PortError::Unavailable(format!("read task failed: {e}")))?
    }
}

fn run_in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let exec = |sql: &str| -> Result<()> {
        conn.prepare_cached(sql).db()?.execute([]).db()?;
        Ok(())
    };
    exec("SAVEPOINT job")?;
    let out = f(conn);
    let end = if out.is_ok() {
        exec("RELEASE job")
    } else {
        exec("ROLLBACK TO job").and_then(|()| exec("RELEASE job"))
    };
    match (out, end) {
        (Ok(v), Ok(())) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
    }
}

/// The writer's metrics (Prometheus names): what each durable write costs.
pub mod m {
    /// Group-commit transactions (one WAL fsync each).
    pub const COMMITS: &str = "switchyard_sqlite_commits_total";
    /// Write jobs (sends, appends, receives, deletes...) committed.
    pub const JOBS: &str = "switchyard_sqlite_write_jobs_total";
    /// Batches rolled back and run again, one savepoint per job, because
    /// a job in them failed.
    pub const REPLAYS: &str = "switchyard_sqlite_batch_replays_total";
    /// 4 KiB pages appended to the WAL (each copied back once more by a
    /// checkpoint).
    pub const WAL_FRAMES: &str = "switchyard_sqlite_wal_frames_total";
    /// Time in COMMIT: WAL writes plus the fsync.
    pub const COMMIT_SECONDS: &str = "switchyard_sqlite_commit_seconds";
    /// Time the writer spent in a checkpoint (the pages the background
    /// checkpoint left, copied back and the database fsync'd): no write
    /// commits meanwhile.
    pub const CHECKPOINT_SECONDS: &str = "switchyard_sqlite_checkpoint_seconds";
    /// Time in a background checkpoint (writes go on meanwhile).
    pub const BULK_CHECKPOINT_SECONDS: &str = "switchyard_sqlite_background_checkpoint_seconds";
}

/// A commit or checkpoint longer than this is logged: every write waited.
const SLOW: Duration = Duration::from_millis(50);

/// Record the time since `since` in `metric`; log it if it was a stall.
fn waited(metric: &'static str, what: &'static str, since: std::time::Instant, pages: i64) {
    let took = since.elapsed();
    metrics::histogram!(metric).record(took.as_secs_f64());
    if took > SLOW {
        tracing::warn!(
            ms = took.as_millis() as u64,
            pages,
            "sqlite: slow {what}; writes waited"
        );
    }
}

/// WAL pages after which the writer checkpoints (SQLite's default).
const CHECKPOINT_PAGES: i64 = 1_000;

/// The bulk of each checkpoint, on a connection and thread of its own.
///
/// A checkpoint copies the WAL's pages back into the database file and
/// fsyncs it: ~5 ms per 1,000 pages here, during which the writer, if it
/// did it, could commit nothing. SQLite lets a checkpoint run beside a
/// writer, but the WAL only restarts from the top once a checkpoint has
/// copied *every* frame, which one running beside sustained writes never
/// does (they append meanwhile). So this thread copies the bulk while
/// writes go on, and then the writer finishes: a second checkpoint that
/// copies only the frames appended since and syncs the file again, short
/// enough to keep the WAL restarting.
struct Checkpointer {
    start: mpsc::SyncSender<()>,
    /// Set while a background checkpoint runs.
    running: Arc<AtomicBool>,
    /// Set when one finished and the writer has not followed up yet.
    finished: Arc<AtomicBool>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let conn = connect(path)?;
        let (start, requests) = mpsc::sync_channel::<()>(1);
        let running = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (run, fin) = (Arc::clone(&running), Arc::clone(&finished));
        std::thread::Builder::new()
            .name("switchyard-sqlite-checkpoint".into())
            .spawn(move || {
                // Ends when the writer (the sender) is gone.
                while requests.recv().is_ok() {
                    let began = std::time::Instant::now();
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "sqlite: background checkpoint failed");
                    }
                    metrics::histogram!(m::BULK_CHECKPOINT_SECONDS)
                        .record(began.elapsed().as_secs_f64());
                    fin.store(true, Ordering::Release);
                    run.store(false, Ordering::Release);
                }
            })
            .map_err(|e| PortError::Unavailable(format!("cannot start checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            start,
            running,
            finished,
        })
    }

    /// Start a background checkpoint unless one is running; false if
    /// the thread is gone (the writer then checkpoints alone).
    fn request(&self) -> bool {
        if self.running.swap(true, Ordering::AcqRel) {
            return true;
        }
        match self.start.try_send(()) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(())) => true,
            Err(mpsc::TrySendError::Disconnected(())) => {
                self.running.store(false, Ordering::Release);
                false
            }
        }
    }

    /// True once after each finished background checkpoint.
    fn take_finished(&self) -> bool {
        self.finished.swap(false, Ordering::AcqRel)
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    counts: &WriterCounts,
    wal_pages: &AtomicI64,
    bulk: &Checkpointer,
) {
    let mut checkpoint_at = CHECKPOINT_PAGES;
    let mut wal_before: i64 = 0;
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch("BEGIN IMMEDIATE").db();
        if let Err(e) = began {
            tracing::warn!(error = %e, jobs = batch.len(), "sqlite: cannot begin a write batch");
            // Run nothing: each job is dropped unrun, which drops its reply
            // channel, so every caller sees `Unavailable`.
            batch.clear();
            continue;
        }
        // Stops at the first failure.
        let all_ok = batch.iter_mut().all(|job| job.run(&conn, false));
        let mut ready = Ok(());
        if !all_ok {
            counts.replays.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::REPLAYS).increment(1);
            ready = conn
                .execute_batch("ROLLBACK; BEGIN IMMEDIATE")
                .db()
                .map(|()| {
                    for job in &mut batch {
                        job.run(&conn, true);
                    }
                });
        }
        let jobs = batch.len();
        let committing = std::time::Instant::now();
        let committed = ready.and_then(|()| conn.execute_batch("COMMIT").db());
        if committed.is_ok() {
            counts.commits.fetch_add(1, Ordering::Relaxed);
            // The WAL's size in frames after this commit (the hook's count
            // starts again after a restart): what this commit wrote.
            let pages = wal_pages.load(Ordering::Relaxed);
            let frames = if pages >= wal_before {
                pages - wal_before
            } else {
                pages
            };
            wal_before = pages;
            metrics::counter!(m::COMMITS).increment(1);
            metrics::counter!(m::JOBS).increment(jobs as u64);
            metrics::counter!(m::WAL_FRAMES).increment(u64::try_from(frames).unwrap_or(0));
            waited(m::COMMIT_SECONDS, "commit", committing, frames);
        } else {
            tracing::warn!(jobs, "sqlite: commit failed; batch rolled back");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for job in batch.drain(..) {
            let result = match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(PortError::Unavailable(format!("commit failed: {e}"))),
            };
            job.finish(result);
        }
        // Answered. Past the mark, the background thread copies the bulk
        // of the WAL back; once it is done, the writer copies the rest here
        // (few pages), so the next commit can restart the WAL.
        let pages = wal_pages.load(Ordering::Relaxed);
        let finish = bulk.take_finished();
        if !finish && pages < checkpoint_at {
            // The WAL restarted (or has not grown enough yet).
            checkpoint_at = checkpoint_at.min(pages + CHECKPOINT_PAGES);
            continue;
        }
        if !finish && bulk.request() {
            continue;
        }
        let checkpointing = std::time::Instant::now();
        let checkpointed = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        waited(m::CHECKPOINT_SECONDS, "checkpoint", checkpointing, pages);
        match checkpointed {
            // All copied back: the next commit restarts the WAL.
            Ok((log, copied)) if log == copied => wal_before = 0,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "sqlite: checkpoint failed; the WAL keeps the data")
            }
        }
        // A reader on an old snapshot can hold part of the WAL back: try
        // again after another interval, not after every batch.
        checkpoint_at = pages + CHECKPOINT_PAGES;
    }
}

/// Milliseconds since the Unix epoch (the time unit of every column).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn to_time(ms: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| PortError::Corrupt(format!("timestamp out of range: {ms}")))
}

pub fn dur_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A stored count/version (SQLite integers are i64) as u64.
pub fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| PortError::Corrupt(format!("negative count {v}")))
}

/// A count/version as a SQLite integer.
pub fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| PortError::Invalid(format!("number too large: {v}")))
}
