//! Circuit breaker per downstream: opens when the failure share over a
//! rolling window reaches the threshold (with at least `min_requests` calls
//! in the window), fails fast while open, lets one probe through after
//! `open_ms` (half-open), and closes when the probe succeeds. Failures are
//! server errors, timeouts and connection errors; 4xx and 429 are neutral.
//! Every transition is a metric (`downstream_breaker_transitions_total`,
//! gauge `downstream_breaker_state`: 0 closed, 1 half-open, 2 open) and a log
//! line. No maintained crate fits (see CRATES.md), hence this small one.
mod state;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

pub use state::{BreakerState, Clock, Outcome, Permit, TokioClock};
use tower::{Layer, Service};

use super::{ResponseFuture, call_inner};
use crate::config::BreakerConfig;
use crate::{CallError, DownRequest, Downstream, Reply};

/// The breaker refused the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker for {0} is open")]
pub struct BreakerOpen(pub Downstream);

impl From<BreakerOpen> for CallError {
    fn from(e: BreakerOpen) -> Self {
        CallError::CircuitOpen { downstream: e.0 }
    }
}

/// One downstream's breaker, shared by every clone of its stack.
#[derive(Debug)]
pub struct Breaker {
    downstream: Downstream,
    machine: Mutex<state::Machine>,
}

impl Breaker {
    pub fn new(downstream: Downstream, cfg: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Breaker {
            downstream,
            machine: Mutex::new(state::Machine::new(downstream.as_str(), cfg, clock)),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.lock().state()
    }

    /// Ask for a permit; the returned guard records the outcome once.
    pub fn acquire(self: &Arc<Self>) -> Result<Guard, BreakerOpen> {
        match self.lock().acquire() {
            Some(permit) => Ok(Guard {
                breaker: self.clone(),
                permit,
                done: false,
            }),
            None => Err(BreakerOpen(self.downstream)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, state::Machine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Records the outcome of one permitted call; if dropped unrecorded (the
/// call was cancelled), records `Neutral` so a probe slot is never leaked.
#[derive(Debug)]
pub struct Guard {
    breaker: Arc<Breaker>,
    permit: Permit,
    done: bool,
}

impl Guard {
    pub fn record(mut self, outcome: Outcome) {
        self.done = true;
        self.breaker.lock().record(self.permit, outcome);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.lock().record(self.permit, Outcome::Neutral);
        }
    }
}

pub fn outcome(r: &Result<Reply, CallError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Success,
        Err(e) if e.is_downstream_failure() => Outcome::Failure,
        Err(_) => Outcome::Neutral,
    }
}

#[derive(Debug, Clone)]
pub struct BreakerLayer {
    breaker: Arc<Breaker>,
}

impl BreakerLayer {
    pub fn new(breaker: Arc<Breaker>) -> Self {
        BreakerLayer { breaker }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = BreakerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BreakerService<S> {
    inner: S,
    breaker: Arc<Breaker>,
}

impl<S> Service<DownRequest> for BreakerService<S>
where
    S: Service<DownRequest, Response = Reply, Error = CallError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Reply;
    type Error = CallError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: DownRequest) -> Self::Future {
        let permit = self.breaker.acquire();
        let inner = self.inner.clone();
        Box::pin(async move {
            let guard = permit?;
            let result = call_inner(inner, req).await;
            guard.record(outcome(&result));
            result
        })
    }
}

#[cfg(test)]
mod tests;
