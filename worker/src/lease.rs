//! A conversation's fleet lease (AWS backend): held while a group's
//! messages are worked on, renewed by the visibility heartbeat, released
//! when the group's task ends. SQS FIFO already hands a group to one
//! consumer at a time; the lease also covers what that lock does not: a
//! message whose visibility ran out while its first holder still works on
//! it (a stalled heartbeat), received by another process or Lambda
//! instance.
//!
//! When it is taken depends on the delivery. The first message of a group
//! that a consumer receives is the group's oldest unfinished one. If its
//! receive count is 1, nobody has held it: SQS holds the group for this
//! consumer until its visibility runs out, so the lease is taken by the
//! first heartbeat (a third of the visibility timeout in), before anyone
//! else could receive the group — a batch finished sooner makes no lease
//! call at all. A redelivery (count ≥ 2) may be one whose earlier holder
//! still works on it, so its lease is taken before anything is done.
//!
//! Without a fleet (embedded: one process) there is no lease and the
//! receive loop's group set is the whole fleet's.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ports::Fleet;
use tracing::warn;

use crate::Worker;

/// Tries at a lease held elsewhere before the batch is handed back: the
/// previous holder may be releasing it right now.
const PAUSES: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// A conversation's lease, for one group task: taken now or by the first
/// heartbeat.
#[derive(Debug)]
pub(crate) struct Lease {
    fleet: Arc<dyn Fleet>,
    key: String,
    owner: Arc<str>,
    hold: Duration,
    taken: AtomicBool,
}

/// What [`take`] got.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Ours (`None`: the backend has no fleet; nothing to hold).
    Held(Option<Lease>),
    /// Another process works the conversation (or the lease could not be
    /// read): hand the batch back.
    Busy,
}

/// The lease of conversation `group` for a batch whose first message was
/// received `receive_count` times, held for the worker's visibility
/// timeout (and renewed with it): taken now for a redelivery, left to the
/// heartbeat for a first delivery (module docs).
pub(crate) async fn take(worker: &Worker, group: &str, receive_count: u32) -> Taken {
    let Some(fleet) = worker.backend.fleet.clone() else {
        return Taken::Held(None);
    };
    let lease = Lease {
        fleet,
        key: group.to_owned(),
        owner: worker.instance.clone(),
        hold: worker.config.visibility,
        taken: AtomicBool::new(false),
    };
    if receive_count <= 1 {
        return Taken::Held(Some(lease));
    }
    for pause in PAUSES.iter().copied().map(Some).chain([None]) {
        match lease.try_take().await {
            Ok(true) => return Taken::Held(Some(lease)),
            Ok(false) => {}
            Err(()) => break,
        }
        let Some(pause) = pause else { break };
        tokio::time::sleep(pause).await;
    }
    crate::metrics::group_busy_elsewhere();
    Taken::Busy
}

impl Lease {
    /// One attempt at the lease (`Err`: it could not be read; logged).
    async fn try_take(&self) -> Result<bool, ()> {
        match self.fleet.lease(&self.key, &self.owner, self.hold).await {
            Ok(got) => {
                self.taken.store(got, Ordering::Relaxed);
                Ok(got)
            }
            Err(e) => {
                warn!(error = %envelope::redact::redacted(&e), "could not take a conversation lease");
                Err(())
            }
        }
    }

    /// The visibility heartbeat: take the lease if the batch started
    /// without it, else extend it by its hold from now.
    pub(crate) async fn renew(&self) {
        let had = self.taken.load(Ordering::Relaxed);
        if let Ok(false) = self.try_take().await {
            // SQS still holds the group for us (our visibility has not run
            // out), so the holder is one that lost it before we received
            // the group, or took ours after a renewal came too late; our
            // appends stay ordered by the log's versions either way.
            warn!(
                had,
                "conversation lease held by another process while this one works the group"
            );
        }
    }

    /// Give the lease up if it was taken (if it lapsed meanwhile, nothing
    /// happens).
    pub(crate) async fn release(&self) {
        if !self.taken.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.fleet.release(&self.key, &self.owner).await {
            warn!(error = %envelope::redact::redacted(&e), "conversation lease release failed; it lapses by itself");
        }
    }
}
