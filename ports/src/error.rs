//! The one error type of every port. Adapters translate their native errors
//! (SQLite, AWS SDK) into these variants once, inside the adapter.

/// What went wrong in a port call, in port terms.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PortError {
    /// The stream is not at the expected version: someone appended first.
    /// Caller: re-read the stream and decide again (optimistic concurrency).
    #[error("sequence conflict on stream {stream}: expected version {expected}, found {actual}")]
    SequenceConflict {
        /// The stream appended to.
        stream: String,
        /// The version the caller expected.
        expected: u64,
        /// The stream's version.
        actual: u64,
    },
    /// An event with this id was already appended (to any stream).
    /// Caller: treat as a duplicate delivery; nothing was written.
    #[error("event {event_id} was already appended")]
    AlreadyAppended {
        /// The duplicate event's id.
        event_id: String,
    },
    /// A conditional write lost: the record is not in the state or owned by
    /// the owner the caller assumed. Caller: re-read; do not retry blindly.
    #[error("condition failed: {0}")]
    ConditionFailed(String),
    /// The named thing does not exist (queue message, DLQ entry, secret...).
    #[error("not found: {0}")]
    NotFound(String),
    /// The input cannot be stored as given (too large, invalid id...).
    /// Caller: a bug or bad input; do not retry.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The backend could not be reached or refused for a transient reason
    /// (throttling, I/O, connection). Caller: retry later; answer 503.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded. Caller: surface to the operator.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl PortError {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, PortError::Unavailable(_))
    }
}

/// The result of a port call.
pub type Result<T, E = PortError> = std::result::Result<T, E>;
