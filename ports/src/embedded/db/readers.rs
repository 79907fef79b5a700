//! The read connections: opened on demand, a few kept idle for reuse.
//! Reads see every committed write and never wait for the writer.
use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::connection::connect;
use crate::Result;

/// Most idle read connections kept open.
const MAX_IDLE_READERS: usize = 4;

/// The pool of read connections of one database file.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// An empty pool for the database at `path`.
    pub fn new(path: PathBuf) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Run `f` on an idle connection, or a new one; blocks (call it off
    /// the async runtime).
    pub fn run<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let out = f(&conn);
        if let Ok(mut v) = self.idle.lock()
            && v.len() < MAX_IDLE_READERS
        {
            v.push(conn);
        }
        out
    }
}
