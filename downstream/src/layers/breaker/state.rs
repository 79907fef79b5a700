//! The breaker's state machine, free of I/O and of tower, with an injectable
//! clock so every transition can be tested step by step.
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BreakerConfig;

/// A time source. The default reads tokio's clock (so `tokio::time::pause`
/// drives it); tests may substitute a manual one.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The default [`Clock`]: tokio's.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// What an operator sees in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// One probe is allowed through; its outcome decides.
    HalfOpen,
    /// Calls fail fast until the open time is over.
    Open,
}

impl BreakerState {
    /// Its name (`closed`, `half_open`, `open`).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
    fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

/// How a call ended, as far as downstream health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The downstream answered.
    Success,
    /// The downstream failed (5xx, timeout, connection error).
    Failure,
    /// Says nothing about health (a 4xx, a 429, a local suppression, a
    /// cancelled call).
    Neutral,
}

/// Permission to make one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// An ordinary call.
    Normal,
    /// The one half-open probe.
    Probe,
}

/// Rolling window + state for one downstream.
#[derive(Debug)]
pub struct Machine {
    name: &'static str,
    cfg: BreakerConfig,
    clock: Arc<dyn Clock>,
    state: State,
    /// (when, failed) for calls inside the window.
    window: VecDeque<(Instant, bool)>,
    failures: usize,
}

impl Machine {
    pub fn new(name: &'static str, cfg: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        crate::metrics::breaker_state(name, BreakerState::Closed.gauge());
        Machine {
            name,
            cfg,
            clock,
            state: State::Closed,
            window: VecDeque::new(),
            failures: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
            State::Open { until } if self.clock.now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
        }
    }

    /// `None` means fail fast: open, or half-open with its probe in flight.
    pub fn acquire(&mut self) -> Option<Permit> {
        match self.state {
            State::Closed => Some(Permit::Normal),
            State::Open { until } if self.clock.now() >= until => {
                self.transition(State::HalfOpen {
                    probe_in_flight: true,
                });
                Some(Permit::Probe)
            }
            State::Open { .. } => None,
            State::HalfOpen {
                probe_in_flight: true,
            } => None,
            State::HalfOpen {
                probe_in_flight: false,
            } => {
                self.state = State::HalfOpen {
                    probe_in_flight: true,
                };
                Some(Permit::Probe)
            }
        }
    }

    pub fn record(&mut self, permit: Permit, outcome: Outcome) {
        let now = self.clock.now();
        match (permit, outcome) {
            (Permit::Probe, Outcome::Success) => {
                self.window.clear();
                self.failures = 0;
                self.transition(State::Closed);
            }
            (Permit::Probe, Outcome::Failure) => self.open(now),
            (Permit::Probe, Outcome::Neutral) => {
                if matches!(self.state, State::HalfOpen { .. }) {
                    self.state = State::HalfOpen {
                        probe_in_flight: false,
                    };
                }
            }
            (Permit::Normal, Outcome::Neutral) => {}
            (Permit::Normal, o) => {
                if !matches!(self.state, State::Closed) {
                    return; // a late answer from before the breaker opened
                }
                let failed = o == Outcome::Failure;
                self.window.push_back((now, failed));
                self.failures += usize::from(failed);
                self.prune(now);
                let total = self.window.len();
                if failed
                    && total >= self.cfg.min_requests as usize
                    && self.failures as f64 / total as f64 >= self.cfg.error_rate
                {
                    self.open(now);
                }
            }
        }
    }

    fn prune(&mut self, now: Instant) {
        let window = Duration::from_millis(self.cfg.window_ms);
        while let Some(&(at, failed)) = self.window.front() {
            if now.duration_since(at) <= window {
                break;
            }
            self.window.pop_front();
            self.failures -= usize::from(failed);
        }
    }

    fn open(&mut self, now: Instant) {
        self.window.clear();
        self.failures = 0;
        self.transition(State::Open {
            until: now + Duration::from_millis(self.cfg.open_ms),
        });
    }

    /// The stored state, without the "open but due for a probe" reading.
    fn raw(&self) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
        }
    }

    fn transition(&mut self, to: State) {
        let from = self.raw();
        self.state = to;
        let to = self.raw();
        if from == to {
            return;
        }
        crate::metrics::breaker_transition(self.name, from.as_str(), to.as_str());
        crate::metrics::breaker_state(self.name, to.gauge());
        if to == BreakerState::Open {
            tracing::warn!(
                downstream = self.name,
                from = from.as_str(),
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                downstream = self.name,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker transition"
            );
        }
    }
}
