//! A conversation's fleet lease (AWS backend): taken before a group's
//! messages are worked on, renewed by the visibility heartbeat, released
//! when the group's task ends. SQS FIFO already hands a group to one
//! consumer at a time; the lease also covers what that lock does not: a
//! message whose visibility ran out while its first holder still works on
//! it (a stalled heartbeat), received by another process or Lambda
//! instance. Without a fleet (embedded: one process) there is no lease and
//! the receive loop's group set is the whole fleet's.
use std::sync::Arc;
use std::time::Duration;

use ports::Fleet;
use tracing::warn;

use crate::Worker;

/// Tries at a lease held elsewhere before the batch is handed back: the
/// previous holder may be releasing it right now.
const PAUSES: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// A held lease.
#[derive(Debug)]
pub(crate) struct Lease {
    fleet: Arc<dyn Fleet>,
    key: String,
    owner: Arc<str>,
    hold: Duration,
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

/// Take the lease of conversation `group` for this process, held for the
/// worker's visibility timeout (and renewed with it).
pub(crate) async fn take(worker: &Worker, group: &str) -> Taken {
    let Some(fleet) = worker.backend.fleet.clone() else {
        return Taken::Held(None);
    };
    let lease = Lease {
        fleet,
        key: group.to_owned(),
        owner: worker.instance.clone(),
        hold: worker.config.visibility,
    };
    for pause in PAUSES.iter().copied().map(Some).chain([None]) {
        match lease
            .fleet
            .lease(&lease.key, &lease.owner, lease.hold)
            .await
        {
            Ok(true) => return Taken::Held(Some(lease)),
            Ok(false) => {}
            Err(e) => {
                warn!(error = %envelope::redact::redacted(&e), "could not take a conversation lease");
                break;
            }
        }
        let Some(pause) = pause else { break };
        tokio::time::sleep(pause).await;
    }
    crate::metrics::group_busy_elsewhere();
    Taken::Busy
}

impl Lease {
    /// Extend the lease by its hold from now (the visibility heartbeat).
    pub(crate) async fn renew(&self) {
        if let Err(e) = self.fleet.lease(&self.key, &self.owner, self.hold).await {
            warn!(error = %envelope::redact::redacted(&e), "conversation lease renewal failed");
        }
    }

    /// Give the lease up (if it lapsed meanwhile, nothing happens).
    pub(crate) async fn release(&self) {
        if let Err(e) = self.fleet.release(&self.key, &self.owner).await {
            warn!(error = %envelope::redact::redacted(&e), "conversation lease release failed; it lapses by itself");
        }
    }
}
