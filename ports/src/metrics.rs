//! Metric names of the ports crate (Prometheus), and the helpers that
//! record them: what each durable write of the embedded backend costs.
//! None of these metrics has labels.
use std::time::{Duration, Instant};

/// Counter: group-commit transactions of the SQLite writer (one WAL fsync
/// each).
pub const SQLITE_COMMITS: &str = "switchyard_sqlite_commits_total";
/// Counter: write jobs (sends, appends, receives, deletes...) committed.
pub const SQLITE_JOBS: &str = "switchyard_sqlite_write_jobs_total";
/// Counter: batches rolled back and run again, one savepoint per job,
/// because a job in them failed.
pub const SQLITE_REPLAYS: &str = "switchyard_sqlite_batch_replays_total";
/// Counter: 4 KiB pages appended to the WAL (each copied back once more by
/// a checkpoint).
pub const SQLITE_WAL_FRAMES: &str = "switchyard_sqlite_wal_frames_total";
/// Histogram: seconds in COMMIT, WAL writes plus the fsync.
pub const SQLITE_COMMIT_SECONDS: &str = "switchyard_sqlite_commit_seconds";
/// Histogram: seconds the writer spent in a checkpoint (the pages the
/// background checkpoint left, copied back and the database fsync'd): no
/// write commits meanwhile.
pub const SQLITE_CHECKPOINT_SECONDS: &str = "switchyard_sqlite_checkpoint_seconds";
/// Histogram: seconds in a background checkpoint (writes go on meanwhile).
pub const SQLITE_BULK_CHECKPOINT_SECONDS: &str = "switchyard_sqlite_background_checkpoint_seconds";

/// A commit or checkpoint longer than this is logged: every write waited.
const SLOW: Duration = Duration::from_millis(50);

/// A committed batch of `jobs` jobs that wrote `frames` WAL frames, its
/// COMMIT begun at `since`.
pub(crate) fn sqlite_commit(jobs: usize, frames: i64, since: Instant) {
    metrics::counter!(SQLITE_COMMITS).increment(1);
    metrics::counter!(SQLITE_JOBS).increment(jobs as u64);
    metrics::counter!(SQLITE_WAL_FRAMES).increment(u64::try_from(frames).unwrap_or(0));
    record_write_pause(SQLITE_COMMIT_SECONDS, "commit", since, frames);
}

/// A batch replayed job by job.
pub(crate) fn sqlite_replay() {
    metrics::counter!(SQLITE_REPLAYS).increment(1);
}

/// The writer's checkpoint begun at `since`, with the WAL at `pages`.
pub(crate) fn sqlite_checkpoint(since: Instant, pages: i64) {
    record_write_pause(SQLITE_CHECKPOINT_SECONDS, "checkpoint", since, pages);
}

/// A background checkpoint begun at `since`.
pub(crate) fn sqlite_background_checkpoint(since: Instant) {
    metrics::histogram!(SQLITE_BULK_CHECKPOINT_SECONDS).record(since.elapsed().as_secs_f64());
}

/// Record the time since `since` in `metric`; log it if it was a stall.
fn record_write_pause(metric: &'static str, what: &'static str, since: Instant, pages: i64) {
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
