//! Logging: JSON lines (default) or human-readable, filtered by `RUST_LOG`
//! (default `info`); spans exported over OpenTelemetry when the `OTEL_*`
//! environment asks for it (`ports::otel`). Log lines never carry secrets or raw customer
//! addresses: the crates redact before logging.
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// What [`init`] installed; keep it until the process ends. Dropping it
/// writes out the log lines still queued and the spans not yet exported.
#[derive(Debug)]
#[must_use = "dropping it stops the log writer and the span exporter"]
pub struct Telemetry {
    _log: WorkerGuard,
    _traces: Option<ports::otel::Tracing>,
}

/// Install the subscriber: the log layer and, when the `OTEL_*`
/// environment asks for it, the span exporter (`ports::otel`).
///
/// A line is formatted on the thread that logs it and written to stderr by
/// a thread of its own, through a buffer flushed each time its queue runs
/// empty: a request never waits on a `write(2)` (a slow reader of stderr —
/// a pipe to journald or a container runtime — would otherwise stall the
/// async runtime's threads), and under load many lines share one write.
/// Not lossy: if the queue (128k lines) fills, loggers wait rather than
/// lines being dropped.
pub fn init(format: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("switchyard-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let log = if format == "json" {
        // The current span's fields are on every line; the list of all
        // open spans would repeat them.
        fmt.json()
            .flatten_event(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.compact().with_filter(filter).boxed()
    };
    Telemetry {
        _log: guard,
        _traces: ports::otel::install(log, "switchyard"),
    }
}
