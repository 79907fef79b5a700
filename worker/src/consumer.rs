//! The receive loop: one loop receives and hands each message group to its
//! own task (so conversations run in parallel and never two messages of one
//! conversation at once — the safer design against the local SQS server's
//! multi-consumer gaps, LOCAL-AWS.md). Visibility is extended while a
//! message is worked on; shutdown stops receiving, lets in-flight messages
//! finish, then returns.
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ports::ReceivedMessage;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, error, info, warn};

use crate::Worker;
use crate::process::Disposition;

/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// Retry delay for the `receive_count`-th delivery (the operators'
/// defaults: 2–5 s, 10–20 s, then 60–120 s, jittered).
pub fn backoff_for(receive_count: u32) -> Duration {
    let (lo, hi) = match receive_count {
        0 | 1 => (2_000, 5_000),
        2 => (10_000, 20_000),
        _ => (60_000, 120_000),
    };
    Duration::from_millis(rand::rng().random_range(lo..=hi))
}

/// Run until `shutdown` is cancelled, then drain in-flight work.
pub async fn run(worker: Worker, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(worker.config.concurrency.max(1)));
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let mut failures = 0u32;
    info!(backend = %worker.backend.description, concurrency = worker.config.concurrency, "worker started");
    loop {
        while tasks.try_join_next().is_some() {}
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tasks.join_next() => continue,
            }
        }
        let max = u32::try_from(free).unwrap_or(u32::MAX).clamp(
            1,
            worker
                .config
                .batch
                .clamp(1, worker.backend.queue.max_receive()),
        );
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = worker.backend.queue.receive(max, worker.config.visibility, worker.config.receive_wait) => r,
        };
        let messages = match received {
            Ok(m) => {
                failures = 0;
                metrics::histogram!("worker_receive_batch").record(m.len() as f64);
                m
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(200 * u64::from(failures.min(25)));
                warn!(error = %e, ?wait, "receive failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        };
        for (group, batch) in by_group(messages) {
            let fresh = lock(&active).insert(group.clone());
            if !fresh {
                // Redelivered while still being processed (visibility ran
                // out): hand it back; the running task finishes first.
                for m in batch {
                    let _ = worker
                        .backend
                        .queue
                        .change_visibility(&m.receipt, Duration::from_secs(5))
                        .await;
                }
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let worker = worker.clone();
            let active = active.clone();
            tasks.spawn(async move {
                process_group(&worker, batch).await;
                lock(&active).remove(&group);
                drop(permit);
            });
        }
    }
    info!(
        in_flight = tasks.len(),
        "worker stopping: finishing in-flight messages"
    );
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            error!(error = %e, "a conversation task failed");
        }
    }
    worker.deletes.close();
    worker.deletes.wait().await;
    info!("worker stopped");
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Messages grouped by conversation, each group in delivery order.
fn by_group(messages: Vec<ReceivedMessage>) -> Vec<(String, VecDeque<ReceivedMessage>)> {
    let mut groups: Vec<(String, VecDeque<ReceivedMessage>)> = Vec::new();
    for m in messages {
        match groups.iter_mut().find(|(g, _)| *g == m.group_id) {
            Some((_, batch)) => batch.push_back(m),
            None => groups.push((m.group_id.clone(), VecDeque::from([m]))),
        }
    }
    groups
}

/// Process one group's messages in order; after the first one that does
/// not finish, hand the rest back so they follow it.
async fn process_group(worker: &Worker, mut batch: VecDeque<ReceivedMessage>) {
    while let Some(m) = batch.pop_front() {
        let finished = process_one(worker, &m).await;
        if !finished {
            for rest in batch.drain(..) {
                let _ = worker
                    .backend
                    .queue
                    .change_visibility(&rest.receipt, Duration::ZERO)
                    .await;
            }
        }
    }
}

/// Process with a visibility heartbeat; apply the disposition. Returns
/// whether the message is finished (deleted or dead-lettered).
pub(crate) async fn process_one(worker: &Worker, m: &ReceivedMessage) -> bool {
    let queue = worker.backend.queue.clone();
    let visibility = worker.config.visibility;
    let receipt = m.receipt.clone();
    let heartbeat = tokio::spawn(async move {
        let period = (visibility / 3).max(Duration::from_millis(200));
        loop {
            tokio::time::sleep(period).await;
            if let Err(e) = queue.change_visibility(&receipt, visibility).await {
                warn!(error = %e, "visibility heartbeat failed");
            }
        }
    });
    let started = std::time::Instant::now();
    let disposition = worker.process(m).await;
    heartbeat.abort();
    metrics::histogram!("worker_process_seconds").record(started.elapsed().as_secs_f64());
    apply(worker, m, disposition).await
}

pub(crate) async fn apply(worker: &Worker, m: &ReceivedMessage, d: Disposition) -> bool {
    let queue = &worker.backend.queue;
    let outcome = match &d {
        Disposition::Done => "done",
        Disposition::Retry { .. } => "retry",
        Disposition::Poison(_) => "dead_lettered",
    };
    metrics::counter!("worker_messages_total", "outcome" => outcome).increment(1);
    match d {
        Disposition::Done => {
            // Everything is in the log already, so the delete need not hold
            // up this conversation's next message: a delete that is lost
            // (crash, outage) only means a redelivery, which resumes from
            // the log and finds nothing left to do. The group stays blocked
            // in the queue until the delete lands, so order holds.
            let (queue, receipt) = (queue.clone(), m.receipt.clone());
            worker.deletes.spawn(
                async move {
                    if let Err(e) = queue.delete(&receipt).await {
                        warn!(error = %e, "delete failed");
                    }
                }
                .in_current_span(),
            );
            true
        }
        Disposition::Retry { after, reason } => {
            let delay = after
                .unwrap_or_else(|| backoff_for(m.receive_count))
                .clamp(Duration::from_secs(1), MAX_VISIBILITY);
            warn!(reason = %envelope::redact::redact(&reason), ?delay, "will retry");
            if let Err(e) = queue.change_visibility(&m.receipt, delay).await {
                warn!(error = %e, "could not set retry delay");
            }
            false
        }
        Disposition::Poison(reason) => {
            error!(reason = %envelope::redact::redact(&reason), "poison message: dead-lettering");
            match queue.dead_letter(m, &reason).await {
                Ok(()) => true,
                Err(e) => {
                    error!(error = %e, "dead-letter failed; the queue's own DLQ policy will catch it");
                    false
                }
            }
        }
    }
}
