//! Fault injection for tests: crash mid-way, panic, drop messages. All off
//! by default; `serve` accepts the drop fault only in a marked test target
//! ([`ports::TEST_TARGET_MARKER`]).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Switches a test flips to make the worker fail on purpose.
#[derive(Debug, Default)]
pub struct Faults {
    /// Once: fail the processing right after a downstream write succeeded
    /// and before its outcome is recorded (a crash mid-call).
    pub crash_after_write: AtomicBool,
    /// Once: the same, but only after a customer-facing write (a reply).
    pub crash_after_reply: AtomicBool,
    /// Acknowledge (delete) every Nth message without processing it — a
    /// deliberately broken worker for the invariant checker's own test.
    pub drop_every: AtomicU64,
    /// Once: panic while processing the next message.
    pub panic_next: AtomicBool,
    seen: AtomicU64,
}

impl Faults {
    /// Whether to crash now (each switch fires once).
    pub(crate) fn take_crash(&self, customer_facing: bool) -> bool {
        self.crash_after_write.swap(false, Ordering::Relaxed)
            || (customer_facing && self.crash_after_reply.swap(false, Ordering::Relaxed))
    }

    /// Whether the drop fault swallows this message.
    pub(crate) fn drop_this_one(&self) -> bool {
        let every = self.drop_every.load(Ordering::Relaxed);
        every > 0 && (self.seen.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every)
    }
}
