//! The receive loop: one loop receives and hands each message group to its
//! own task (so conversations run in parallel and never two messages of one
//! conversation at once — in this process by the set of groups being worked
//! on, across processes by the conversation's fleet lease, `lease.rs`).
//! Every message a group task holds — the one being
//! worked on and the rest of its batch — has its visibility extended until
//! it is finished; shutdown stops receiving, lets in-flight messages
//! finish, then returns.
//!
//! Order after a crash: when several messages of one group that a dead
//! process held become visible at once, SQS FIFO redelivers the oldest
//! first, but the local SQS server (moto 5.2) hands out the *newest* first
//! (`ports/tests/conformance_aws.rs` pins that gap). So a batch whose first
//! message is a redelivery — other than a group head this process put back
//! itself — is released once ("settled") and received again: by then the
//! queue shows the whole group, oldest first, on either. And on SQS the
//! first receive waits out a long poll a killed predecessor may have left
//! running on the server: beside it, a receive of ours would be a second
//! consumer, which the local server does not keep in group order either.
use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use ports::ReceivedMessage;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, error, info, warn};

use crate::Worker;
use crate::disposition::Disposition;
use crate::hold::{self, Slot};
use crate::lease::{self, Lease, Taken};

/// How long a batch handed back because its conversation is being worked
/// on (here or by another process) stays hidden.
pub(crate) const BUSY_BACK_IN: Duration = Duration::from_secs(5);

/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// Entries kept in the settle memories before they are cleared.
const MEMORY_LIMIT: usize = 10_000;

/// Retry delay for the `receive_count`-th delivery after a transient
/// failure: 2–5 s, 10–20 s, 60–120 s, then 5–10 min, jittered. With the
/// default 20 deliveries a conversation is held about 2 h before its head
/// is dead-lettered with the last reason.
pub fn backoff_for(receive_count: u32) -> Duration {
    let (lo, hi) = match receive_count {
        0 | 1 => (2_000, 5_000),
        2 => (10_000, 20_000),
        3 => (60_000, 120_000),
        _ => (300_000, 600_000),
    };
    Duration::from_millis(rand::rng().random_range(lo..=hi))
}

/// What the receive loop remembers to keep group order after a crash.
#[derive(Debug, Default)]
struct Settle {
    /// Heads of groups this process put back itself (a retry delay): their
    /// redelivery is expected, and a head is the oldest of its group.
    own_retries: HashSet<String>,
    /// Messages just released to settle their group, until their group is
    /// received again.
    settled: HashSet<String>,
}

impl Settle {
    /// Whether `batch` (one group's messages, in delivery order) must be
    /// released and received again before it is worked on: its first
    /// message is a redelivery that is neither a head this process put
    /// back nor the first of the batch received right after a settle.
    fn must_settle(&mut self, batch: &VecDeque<ReceivedMessage>) -> bool {
        let Some(first) = batch.front() else {
            return false;
        };
        if self.settled.contains(&first.message_id) {
            // The receive right after a settle: the group as the queue now
            // shows it. The exemption is used up; a later reorder of these
            // messages (after a retry behind them) is settled again.
            for msg in batch {
                self.settled.remove(&msg.message_id);
            }
            return false;
        }
        if first.receive_count <= 1 || self.own_retries.contains(&first.message_id) {
            return false;
        }
        if self.settled.len() + batch.len() > MEMORY_LIMIT {
            self.settled.clear();
        }
        self.settled
            .extend(batch.iter().map(|msg| msg.message_id.clone()));
        true
    }

    fn retried(&mut self, message_id: &str) {
        if self.own_retries.len() >= MEMORY_LIMIT {
            self.own_retries.clear();
        }
        self.own_retries.insert(message_id.to_owned());
    }

    fn finished(&mut self, message_id: &str) {
        self.own_retries.remove(message_id);
        self.settled.remove(message_id);
    }
}

/// The receive loop's state: permits for conversations at once, the
/// groups being worked on, the settle memory, the group tasks.
struct Loop {
    worker: Worker,
    permits: Arc<Semaphore>,
    active: Arc<Mutex<HashSet<String>>>,
    settle: Arc<Mutex<Settle>>,
    tasks: JoinSet<()>,
    /// Receive failures in a row (for the pause before the next receive).
    failures: u32,
    /// Cancelled at shutdown (a held conversation then stops waiting).
    shutdown: CancellationToken,
    /// `pause.worker` was on at the last look.
    paused: bool,
}

/// Run until `shutdown` is cancelled, then drain in-flight work.
pub async fn run(worker: Worker, shutdown: CancellationToken) {
    info!(backend = %worker.backend.description, concurrency = worker.config.concurrency, "worker started");
    let mut l = Loop {
        permits: Arc::new(Semaphore::new(worker.config.concurrency.max(1))),
        worker,
        active: Arc::default(),
        settle: Arc::default(),
        tasks: JoinSet::new(),
        failures: 0,
        shutdown: shutdown.clone(),
        paused: false,
    };
    l.wait_for_predecessor(&shutdown).await;
    while let Some(messages) = l.receive(&shutdown).await {
        for (group, batch) in by_group(messages) {
            if !l.dispatch(group, batch).await {
                break;
            }
        }
    }
    info!(
        in_flight = l.tasks.len(),
        "worker stopping: finishing in-flight messages"
    );
    while let Some(r) = l.tasks.join_next().await {
        if let Err(e) = r {
            error!(error = %envelope::redact::redacted(&e), "a conversation task failed");
        }
    }
    l.worker.deletes.close();
    l.worker.deletes.wait().await;
    info!("worker stopped");
}

impl Loop {
    /// A predecessor killed mid long-poll leaves its receive running on the
    /// SQS server; a receive of ours beside it is a second consumer (the
    /// local SQS server then breaks group order). Wait until it has ended:
    /// its wait, once more for a server slow to start or end it, and a
    /// margin — a few seconds of startup, paid once per process.
    async fn wait_for_predecessor(&self, shutdown: &CancellationToken) {
        if !self.worker.backend.queue.receives_outlive_their_caller() {
            return;
        }
        let predecessor = self.worker.config.receive_wait * 2 + Duration::from_secs(5);
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(predecessor) => {}
        }
    }

    /// The next batch, once a permit is free; `None` at shutdown.
    async fn receive(&mut self, shutdown: &CancellationToken) -> Option<Vec<ReceivedMessage>> {
        let worker = self.worker.clone();
        loop {
            while self.tasks.try_join_next().is_some() {}
            let free = self.permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = self.tasks.join_next() => continue,
                }
            }
            if hold::paused(&worker, hold::WORKER).await {
                if !self.paused {
                    info!("pause.worker is on: not receiving (the ingress keeps acknowledging)");
                    self.paused = true;
                    crate::metrics::worker_paused(true);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                }
            }
            if self.paused {
                info!("pause.worker is off: receiving again");
                self.paused = false;
                crate::metrics::worker_paused(false);
            }
            let max = u32::try_from(free).unwrap_or(u32::MAX).clamp(
                1,
                worker
                    .config
                    .batch
                    .clamp(1, worker.backend.queue.max_receive()),
            );
            let received = tokio::select! {
                _ = shutdown.cancelled() => return None,
                r = worker.backend.queue.receive(max, worker.config.visibility, worker.config.receive_wait) => r,
            };
            match received {
                Ok(messages) => {
                    self.failures = 0;
                    crate::metrics::received(messages.len());
                    return Some(messages);
                }
                Err(e) => {
                    self.failures = self.failures.saturating_add(1);
                    let wait = Duration::from_millis(200 * u64::from(self.failures.min(25)));
                    warn!(error = %envelope::redact::redacted(&e), ?wait, "receive failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Hand one group's batch to its own task (or back to the queue when
    /// the group is busy here or elsewhere, or must settle). `false` when
    /// no more tasks can start (shutting down).
    async fn dispatch(&mut self, group: String, batch: VecDeque<ReceivedMessage>) -> bool {
        let worker = &self.worker;
        if !lock(&self.active).insert(group.clone()) {
            // Redelivered while still being processed (visibility ran out):
            // hand it back; the running task finishes first.
            release(worker, batch.iter(), BUSY_BACK_IN).await;
            return true;
        }
        if lock(&self.settle).must_settle(&batch) {
            crate::metrics::group_settled();
            release(worker, batch.iter(), Duration::ZERO).await;
            lock(&self.active).remove(&group);
            return true;
        }
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            lock(&self.active).remove(&group);
            return false;
        };
        let (worker, active, settle) = (worker.clone(), self.active.clone(), self.settle.clone());
        let mut slot = Slot::new(self.permits.clone(), permit);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let first_count = batch.front().map_or(1, |m| m.receive_count);
            match lease::take(&worker, &group, first_count).await {
                Taken::Held(lease) => {
                    let group_task = GroupTask {
                        worker: &worker,
                        group: &group,
                        settle: &settle,
                        shutdown: &shutdown,
                    };
                    group_task.process(batch, lease, &mut slot).await;
                }
                // Worked on by another process: back behind it, as when
                // this process still works on it (above).
                Taken::Busy => release(&worker, batch.iter(), BUSY_BACK_IN).await,
            }
            lock(&active).remove(&group);
            drop(slot);
        });
        true
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Set the visibility of `messages` (0 = hand back now).
pub(crate) async fn release<'a>(
    worker: &Worker,
    messages: impl Iterator<Item = &'a ReceivedMessage>,
    visibility: Duration,
) {
    for msg in messages {
        if let Err(e) = worker
            .backend
            .queue
            .change_visibility(&msg.receipt, visibility)
            .await
        {
            warn!(error = %envelope::redact::redacted(&e), "could not hand a message back");
        }
    }
}

/// Messages grouped by conversation, each group in delivery order.
fn by_group(messages: Vec<ReceivedMessage>) -> Vec<(String, VecDeque<ReceivedMessage>)> {
    let mut groups: Vec<(String, VecDeque<ReceivedMessage>)> = Vec::new();
    for msg in messages {
        match groups.iter_mut().find(|(g, _)| *g == msg.group_id) {
            Some((_, batch)) => batch.push_back(msg),
            None => groups.push((msg.group_id.clone(), VecDeque::from([msg]))),
        }
    }
    groups
}

/// Receipts a task holds, kept invisible by one heartbeat until released,
/// and the conversation's lease, renewed by the same heartbeat and given
/// up by [`Held::finish`]. The heartbeat stops when this is dropped,
/// however the task ends (a lease not given up lapses by itself).
#[derive(Debug)]
pub(crate) struct Held {
    receipts: Arc<Mutex<Vec<String>>>,
    heartbeat: tokio::task::JoinHandle<()>,
    lease: Option<Arc<Lease>>,
}

impl Held {
    /// Start holding `receipts` and `lease` (extended every third of the
    /// visibility).
    pub(crate) fn new(worker: &Worker, receipts: Vec<String>, lease: Option<Lease>) -> Held {
        let receipts = Arc::new(Mutex::new(receipts));
        let (queue, visibility) = (worker.backend.queue.clone(), worker.config.visibility);
        let held = receipts.clone();
        let lease = lease.map(Arc::new);
        let renewed = lease.clone();
        let heartbeat = tokio::spawn(async move {
            let period = (visibility / 3).max(Duration::from_millis(200));
            loop {
                tokio::time::sleep(period).await;
                if let Some(lease) = &renewed {
                    lease.renew().await;
                }
                let now: Vec<String> = lock(&held).clone();
                for receipt in now {
                    if let Err(e) = queue.change_visibility(&receipt, visibility).await {
                        warn!(error = %envelope::redact::redacted(&e), "visibility heartbeat failed");
                    }
                }
            }
        });
        Held {
            receipts,
            heartbeat,
            lease,
        }
    }

    /// Done with the group: stop the heartbeat (waiting for a renewal in
    /// flight, so it cannot land after the release) and give the lease up.
    pub(crate) async fn finish(mut self) {
        self.heartbeat.abort();
        let _ = (&mut self.heartbeat).await;
        if let Some(lease) = &self.lease {
            lease.release().await;
        }
    }

    /// Stop extending `receipt` (finished, or handed back).
    pub(crate) fn release(&self, receipt: &str) {
        lock(&self.receipts).retain(|r| r != receipt);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// One group's task: the worker, its conversation, the settle memory and
/// the shutdown signal.
struct GroupTask<'a> {
    worker: &'a Worker,
    group: &'a str,
    settle: &'a Mutex<Settle>,
    shutdown: &'a CancellationToken,
}

impl GroupTask<'_> {
    /// Process the group's messages in order, holding all of them; after
    /// the first one that does not finish, hand the rest back behind it.
    /// A message held by a pause waits here until the pause ends, then is
    /// processed again.
    async fn process(
        &self,
        mut batch: VecDeque<ReceivedMessage>,
        lease: Option<Lease>,
        slot: &mut Slot,
    ) {
        let worker = self.worker;
        let held = Held::new(
            worker,
            batch.iter().map(|msg| msg.receipt.clone()).collect(),
            lease,
        );
        while let Some(msg) = batch.pop_front() {
            let mut disposition = self.process_one(&msg).await;
            while let Disposition::Retry {
                paused: Some(downstream),
                ..
            } = &disposition
            {
                if !hold::until_resumed(worker, self.group, downstream, slot, self.shutdown).await {
                    break;
                }
                disposition = self.process_one(&msg).await;
            }
            let applied = apply(worker, &msg, disposition).await;
            held.release(&msg.receipt);
            let Applied::Held(head_back_in) = applied else {
                lock(self.settle).finished(&msg.message_id);
                continue;
            };
            lock(self.settle).retried(&msg.message_id);
            // The rest stay hidden a little longer than the head, so the
            // head is the first of its group to be seen again, and their
            // receive counts do not grow with the head's retries.
            for rest in &batch {
                held.release(&rest.receipt);
            }
            release(worker, batch.iter(), head_back_in + Duration::from_secs(1)).await;
            break;
        }
        held.finish().await;
    }

    async fn process_one(&self, msg: &ReceivedMessage) -> Disposition {
        let started = Instant::now();
        let disposition = process_guarded(self.worker, msg).await;
        crate::metrics::processed_in(started.elapsed());
        disposition
    }
}

/// `worker.process`, with a panic turned into a dead letter naming it (the
/// message can never succeed as it is; the reason is redacted).
pub(crate) async fn process_guarded(worker: &Worker, msg: &ReceivedMessage) -> Disposition {
    match AssertUnwindSafe(worker.process(msg)).catch_unwind().await {
        Ok(d) => d,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            error!(panic = %envelope::redact::redacted(&what), "the worker panicked on a message");
            crate::metrics::panicked();
            Disposition::Poison(format!(
                "the worker panicked processing this message: {what}"
            ))
        }
    }
}

/// What [`apply`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Deleted or dead-lettered: the group may go on.
    Finished,
    /// Still on the queue, seen again in about this long (its retry delay,
    /// or what is left of its visibility).
    Held(Duration),
}

/// Apply a disposition to the queue.
///
/// Transient failures hold the conversation: the message is retried with
/// [`backoff_for`] and nothing behind it moves. On its last delivery
/// before the queue's own backstop (`max_receive_count`) a message that
/// still fails is dead-lettered here, with its last reason, rather than
/// moved by the queue with none.
pub(crate) async fn apply(worker: &Worker, msg: &ReceivedMessage, d: Disposition) -> Applied {
    let queue = &worker.backend.queue;
    let d = match d {
        Disposition::Retry { reason, .. }
            if queue
                .max_receive_count()
                .is_some_and(|max| msg.receive_count >= max) =>
        {
            Disposition::Poison(format!(
                "still failing after {} deliveries (transient, held with backoff): {reason}",
                msg.receive_count
            ))
        }
        other => other,
    };
    let outcome = match &d {
        Disposition::Done => "done",
        Disposition::Retry { .. } => "retry",
        Disposition::Poison(_) => "dead_lettered",
    };
    crate::metrics::message_finished(outcome);
    match d {
        Disposition::Done => {
            // Everything is in the log already, so the delete need not hold
            // up this conversation's next message: a delete that is lost
            // (crash, outage) only means a redelivery, which resumes from
            // the log and finds nothing left to do. The group stays blocked
            // in the queue until the delete lands, so order holds.
            let (queue, receipt) = (queue.clone(), msg.receipt.clone());
            worker.deletes.spawn(
                async move {
                    if let Err(e) = queue.delete(&receipt).await {
                        warn!(error = %envelope::redact::redacted(&e), "delete failed");
                    }
                }
                .in_current_span(),
            );
            Applied::Finished
        }
        Disposition::Retry { after, reason, .. } => {
            let longest = worker.config.max_retry_delay.min(MAX_VISIBILITY);
            let delay = after
                .unwrap_or_else(|| backoff_for(msg.receive_count))
                .clamp(Duration::from_secs(1).min(longest), longest);
            warn!(reason = %envelope::redact::redact(&reason), ?delay, "will retry");
            if let Err(e) = queue.change_visibility(&msg.receipt, delay).await {
                warn!(error = %envelope::redact::redacted(&e), "could not set retry delay");
                return Applied::Held(worker.config.visibility);
            }
            Applied::Held(delay)
        }
        Disposition::Poison(reason) => {
            error!(reason = %envelope::redact::redact(&reason), "poison message: dead-lettering");
            worker.close_dead_lettered(msg, &reason).await;
            match queue.dead_letter(msg, &reason).await {
                Ok(()) => Applied::Finished,
                Err(e) => {
                    error!(error = %envelope::redact::redacted(&e), "dead-letter failed; it is delivered again when its visibility ends");
                    Applied::Held(worker.config.visibility)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, receive_count: u32) -> ReceivedMessage {
        ReceivedMessage {
            message_id: id.to_owned(),
            receipt: format!("r-{id}"),
            group_id: "g".to_owned(),
            dedup_id: id.to_owned(),
            body: String::new(),
            attributes: Default::default(),
            receive_count,
            sent_at: chrono::Utc::now(),
        }
    }

    fn batch(ms: &[(&str, u32)]) -> VecDeque<ReceivedMessage> {
        ms.iter().map(|(id, n)| msg(id, *n)).collect()
    }

    #[test]
    fn a_redelivered_batch_is_settled_until_its_oldest_comes_first() {
        let mut s = Settle::default();
        assert!(
            !s.must_settle(&batch(&[("m1", 1), ("m2", 1)])),
            "first delivery"
        );
        // A dead consumer's group comes back newest first: settle.
        assert!(s.must_settle(&batch(&[("m3", 2)])));
        // Then the whole group, oldest first: m1 was not seen yet.
        assert!(s.must_settle(&batch(&[("m1", 2), ("m2", 2), ("m3", 3)])));
        assert!(!s.must_settle(&batch(&[("m1", 3), ("m2", 3), ("m3", 4)])));
        // m1 is retried here; m3, put back behind it, comes back first:
        // settled again (the earlier settle's exemption is used up).
        s.retried("m1");
        assert!(s.must_settle(&batch(&[("m3", 5)])));
        assert!(!s.must_settle(&batch(&[("m1", 4), ("m2", 4), ("m3", 6)])));
    }

    #[test]
    fn only_a_head_put_back_here_is_exempt() {
        let mut s = Settle::default();
        s.retried("head");
        assert!(!s.must_settle(&batch(&[("head", 2), ("rest", 2)])));
        // The rest of a batch put back behind its head is not exempt: if it
        // comes back first, the head is hidden behind it.
        assert!(s.must_settle(&batch(&[("rest", 3)])));
        s.finished("head");
        assert!(s.must_settle(&batch(&[("head", 3)])));
    }
}
