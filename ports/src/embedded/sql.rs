//! SQLite values and errors as the ports see them: SQLite errors become
//! port errors, and times and counts convert to and from the integer
//! columns they are stored in.
use std::time::Duration;

use crate::{PortError, Result};

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
    /// The result with its error translated by [`sql_err`].
    fn db(self) -> Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(sql_err)
    }
}

/// Milliseconds since the Unix epoch (the time unit of every column).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A stored time (milliseconds since the Unix epoch) as a date-time.
pub fn to_time(ms: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| PortError::Corrupt(format!("timestamp out of range: {ms}")))
}

/// A duration in milliseconds, saturating.
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
