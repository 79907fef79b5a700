//! A pause that holds: while `pause.<downstream>` is on, a conversation
//! whose next step needs that downstream waits with its message in flight
//! (its group held on the queue, its visibility and lease kept by the
//! heartbeat), gives its concurrency slot back so other conversations keep
//! flowing, and goes on — the message processed again, resuming its
//! pending action — once the downstream is resumed. `pause.worker` stops
//! receiving altogether; the ingress keeps acknowledging.
//!
//! At most [`MAX_HELD`] conversations are held in memory; past that, and
//! where a process cannot wait (a Lambda invocation, a worker shutting
//! down), a held message is retried through its visibility instead
//! (`consumer::apply`).
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::Worker;

/// Conversations one process holds at most (SQS FIFO allows 120,000
/// messages in flight per queue; a held conversation costs its batch and
/// one heartbeat).
pub const MAX_HELD: usize = 10_000;
/// How often a held conversation looks at the pause flag (through the
/// flag cache, so this costs no store read).
const HOLD_POLL: Duration = Duration::from_millis(250);
/// The flag that stops the worker receiving (`flags set pause worker on`).
pub const WORKER: &str = "worker";

/// How many conversations this process holds.
#[derive(Debug, Default)]
pub struct Holds {
    held: AtomicUsize,
}

impl Holds {
    /// Conversations held now.
    pub fn count(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// One more held, unless [`MAX_HELD`] are.
    fn begin(self: &Arc<Self>, downstream: &str) -> Option<Holding> {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_HELD).then_some(n + 1)
            })
            .ok()?;
        crate::metrics::held(downstream, 1.0);
        Some(Holding {
            holds: self.clone(),
            downstream: downstream.to_owned(),
        })
    }
}

/// One held conversation; counted until dropped.
struct Holding {
    holds: Arc<Holds>,
    downstream: String,
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.holds.held.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::held(&self.downstream, -1.0);
    }
}

/// A conversation task's share of the worker's concurrency: given back
/// while it is held, taken again before it goes on.
pub(crate) struct Slot {
    permits: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    pub(crate) fn new(permits: Arc<Semaphore>, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            permits,
            permit: Some(permit),
        }
    }
}

/// Whether `downstream` is paused now (the flag cache's view).
pub(crate) async fn paused(worker: &Worker, downstream: &str) -> bool {
    worker.downstreams.flags().await.paused(downstream)
}

/// Hold the conversation until `downstream` is resumed: `true` when it was
/// and the task has its slot again; `false` when it cannot be held here
/// (too many held, or shutting down): retry it through the queue.
pub(crate) async fn until_resumed(
    worker: &Worker,
    group: &str,
    downstream: &str,
    slot: &mut Slot,
    shutdown: &CancellationToken,
) -> bool {
    let Some(_holding) = worker.holds.begin(downstream) else {
        return false;
    };
    slot.permit = None;
    info!(conversation = %envelope::redact::log_id(group), downstream, "paused: conversation held until the downstream is resumed");
    let started = tokio::time::Instant::now();
    while paused(worker, downstream).await {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(HOLD_POLL) => {}
        }
    }
    let permit = tokio::select! {
        _ = shutdown.cancelled() => return false,
        p = slot.permits.clone().acquire_owned() => p,
    };
    let Ok(permit) = permit else {
        return false;
    };
    slot.permit = Some(permit);
    info!(conversation = %envelope::redact::log_id(group), downstream, held_ms = started.elapsed().as_millis() as u64, "resumed: conversation goes on");
    true
}
