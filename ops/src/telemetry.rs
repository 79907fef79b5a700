//! Logging: JSON lines (default) or human-readable, filtered by `RUST_LOG`
//! (default `info`). Log lines never carry secrets or raw customer
//! addresses: the crates redact before logging.
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Install the subscriber. Keep the guard until the process ends: dropping
/// it writes out the lines still queued.
///
/// A line is formatted on the thread that logs it and written to stderr by
/// a thread of its own, through a buffer flushed each time its queue runs
/// empty: a request never waits on a `write(2)` (a slow reader of stderr —
/// a pipe to journald or a container runtime — would otherwise stall the
/// async runtime's threads), and under load many lines share one write.
/// Not lossy: if the queue (128k lines) fills, loggers wait rather than
/// lines being dropped.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: &str) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("switchyard-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if format == "json" {
        // The current span's fields are on every line; the list of all
        // open spans would repeat them.
        builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    guard
}
