//! The worker's metrics: every name it records, and the one place that
//! records each.
use std::time::Duration;

/// Messages finished, by `outcome`: `done`, `retry`, `dead_lettered`.
pub const MESSAGES_TOTAL: &str = "worker_messages_total";
/// Actions attempted, by `action` (`add_tags`, `auto_reply`) and `outcome`
/// (`completed`, `shadowed`, a suppression reason, `retry_later`,
/// `failed`, `unknown_outcome`).
pub const ACTIONS_TOTAL: &str = "worker_actions_total";
/// Seconds spent processing one message.
pub const PROCESS_SECONDS: &str = "worker_process_seconds";
/// Messages per receive.
pub const RECEIVE_BATCH: &str = "worker_receive_batch";
/// Redelivered groups released once to be received again oldest first.
pub const GROUPS_SETTLED_TOTAL: &str = "worker_groups_settled_total";
/// Panics caught while processing a message (each dead-letters it).
pub const PANICS_TOTAL: &str = "worker_panics_total";
/// Group batches handed back because another process held the
/// conversation's fleet lease.
pub const GROUPS_BUSY_ELSEWHERE_TOTAL: &str = "worker_groups_busy_elsewhere_total";

/// Conversations held by a pause, by `downstream` (gauge).
pub const HELD_CONVERSATIONS: &str = "worker_held_conversations";
/// 1 while `pause.worker` keeps this worker from receiving (gauge).
pub const PAUSED: &str = "worker_paused";

pub(crate) fn held(downstream: &str, change: f64) {
    metrics::gauge!(HELD_CONVERSATIONS, "downstream" => downstream.to_owned()).increment(change);
}

pub(crate) fn worker_paused(paused: bool) {
    metrics::gauge!(PAUSED).set(if paused { 1.0 } else { 0.0 });
}

pub(crate) fn message_finished(outcome: &'static str) {
    metrics::counter!(MESSAGES_TOTAL, "outcome" => outcome).increment(1);
}

pub(crate) fn action_performed(action: &'static str, outcome: &'static str) {
    metrics::counter!(ACTIONS_TOTAL, "action" => action, "outcome" => outcome).increment(1);
}

pub(crate) fn processed_in(elapsed: Duration) {
    metrics::histogram!(PROCESS_SECONDS).record(elapsed.as_secs_f64());
}

pub(crate) fn received(messages: usize) {
    metrics::histogram!(RECEIVE_BATCH).record(messages as f64);
}

pub(crate) fn group_settled() {
    metrics::counter!(GROUPS_SETTLED_TOTAL).increment(1);
}

pub(crate) fn group_busy_elsewhere() {
    metrics::counter!(GROUPS_BUSY_ELSEWHERE_TOTAL).increment(1);
}

pub(crate) fn panicked() {
    metrics::counter!(PANICS_TOTAL).increment(1);
}
