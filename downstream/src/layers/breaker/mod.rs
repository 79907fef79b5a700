//! Circuit breaker per downstream: opens when the failure share over a
//! rolling window reaches the threshold (with at least `min_requests` calls
//! in the window), fails fast while open, lets one probe through after
//! `open_ms` (half-open), and closes when the probe succeeds. Failures are
//! server errors, timeouts and connection errors; 4xx and 429 are neutral.
//! Every transition is a metric (`downstream_breaker_transitions_total`,
//! gauge `downstream_breaker_state`: 0 closed, 1 half-open, 2 open) and a log
//! line. No crate is both maintained and stable (`failsafe` has been
//! dormant since 2024, `tower-resilience` is pre-1.0 with frequent breaking
//! changes), hence this small one with an injectable clock.
mod state;

use std::sync::{Arc, Mutex};

pub use state::{BreakerState, Clock, Outcome, Permit, TokioClock};
use tower::Service;

use super::{Around, AroundLayer, call_inner};
use crate::config::BreakerConfig;
use crate::{CallError, Downstream, Reply, StackRequest};

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
    /// A closed breaker for `downstream`, tuned by `cfg`, timed by `clock`.
    pub fn new(downstream: Downstream, cfg: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Breaker {
            downstream,
            machine: Mutex::new(state::Machine::new(downstream.as_str(), cfg, clock)),
        }
    }

    /// Its state now.
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
    /// Record how the call ended.
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

/// How a call's result counts for the breaker: downstream failures
/// (server errors, timeouts, connection errors) fail, 4xx and 429 are
/// neutral.
pub fn outcome(r: &Result<Reply, CallError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Success,
        Err(e) if e.is_downstream_failure() => Outcome::Failure,
        Err(_) => Outcome::Neutral,
    }
}

/// Fails fast while open; records each outcome.
#[derive(Debug, Clone)]
pub struct BreakerGate {
    breaker: Arc<Breaker>,
}

/// The breaker as a tower layer.
pub type BreakerLayer = AroundLayer<BreakerGate>;

impl BreakerLayer {
    /// The layer around `breaker`.
    pub fn new(breaker: Arc<Breaker>) -> Self {
        AroundLayer(BreakerGate { breaker })
    }
}

impl Around for BreakerGate {
    fn around<S>(
        self,
        inner: S,
        req: StackRequest,
    ) -> impl std::future::Future<Output = Result<Reply, CallError>> + Send + 'static
    where
        S: Service<StackRequest, Response = Reply, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        // The permit is taken when the call is made, not when polled.
        let permit = self.breaker.acquire();
        async move {
            let guard = permit?;
            let result = call_inner(inner, req).await;
            guard.record(outcome(&result));
            result
        }
    }
}

#[cfg(test)]
mod tests;
