//! Write jobs as the writer thread sees them: a caller's closure, its
//! latest outcome and the channel its answer goes back on; and the
//! savepoint a job runs in when its batch is replayed.
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::super::sql::SqlResult;
use crate::{PortError, Result};

/// A write job as the writer thread sees it.
pub(super) trait Job: Send {
    /// Run the job's statements, inside a savepoint of its own when
    /// `isolated`. False if the job failed.
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool;
    /// Answer the caller once the batch's commit is known.
    fn finish(self: Box<Self>, commit: Result<()>);
}

/// A job's closure, its latest outcome and where to send the answer.
pub(super) struct Pending<T, F> {
    f: F,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Pending<T, F> {
    /// A job that has not run yet, answering on `reply`.
    pub fn new(f: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Pending {
            f,
            outcome: None,
            reply,
        }
    }
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
