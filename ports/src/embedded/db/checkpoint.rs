//! WAL checkpoints: when the writer checkpoints, and the background thread
//! that copies the bulk of each checkpoint while writes go on.
//!
//! A checkpoint copies the WAL's pages back into the database file and
//! fsyncs it: ~5 ms per 1,000 pages here, during which the writer, if it
//! did it, could commit nothing. SQLite lets a checkpoint run beside a
//! writer, but the WAL only restarts from the top once a checkpoint has
//! copied *every* frame, which one running beside sustained writes never
//! does (they append meanwhile). So a background thread copies the bulk
//! while writes go on, and then the writer finishes: a second checkpoint
//! that copies only the frames appended since and syncs the file again,
//! short enough to keep the WAL restarting.
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use rusqlite::Connection;

use super::connection::connect;
use crate::{PortError, Result, metrics};

/// WAL pages after which the writer checkpoints (SQLite's default).
const CHECKPOINT_PAGES: i64 = 1_000;

/// The writer's checkpoint schedule and its background helper.
pub(super) struct Checkpoints {
    background: Checkpointer,
    /// WAL size in pages at which the next checkpoint starts.
    at: i64,
}

impl Checkpoints {
    /// Start the background checkpoint thread on its own connection.
    pub fn start(path: &Path) -> Result<Checkpoints> {
        Ok(Checkpoints {
            background: Checkpointer::start(path)?,
            at: CHECKPOINT_PAGES,
        })
    }

    /// Called by the writer after answering a batch, with the WAL's size
    /// in pages. Past the mark, the background thread copies the bulk of
    /// the WAL back; once it is done, the writer copies the rest here (few
    /// pages), so the next commit can restart the WAL. True when every
    /// frame was copied back (the next commit restarts the WAL).
    pub fn after_batch(&mut self, conn: &Connection, pages: i64) -> bool {
        let finish = self.background.take_finished();
        if !finish && pages < self.at {
            // The WAL restarted (or has not grown enough yet).
            self.at = self.at.min(pages + CHECKPOINT_PAGES);
            return false;
        }
        if !finish && self.background.request() {
            return false;
        }
        let checkpointing = Instant::now();
        let checkpointed = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        metrics::sqlite_checkpoint(checkpointing, pages);
        // A reader on an old snapshot can hold part of the WAL back: try
        // again after another interval, not after every batch.
        self.at = pages + CHECKPOINT_PAGES;
        match checkpointed {
            // All copied back: the next commit restarts the WAL.
            Ok((log, copied)) => log == copied,
            Err(e) => {
                tracing::warn!(error = %e, "sqlite: checkpoint failed; the WAL keeps the data");
                false
            }
        }
    }
}

/// The bulk of each checkpoint, on a connection and thread of its own
/// (see the module notes).
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
                    let began = Instant::now();
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "sqlite: background checkpoint failed");
                    }
                    metrics::sqlite_background_checkpoint(began);
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
