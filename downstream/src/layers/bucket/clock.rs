//! A governor clock over tokio's clock, so `tokio::time::pause()` drives the
//! rate limiter in tests exactly as it drives the sleeps that wait on it.
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(pub tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;
    fn add(self, d: Nanos) -> Self {
        TokioInstant(self.0 + Duration::from(d))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }
    fn saturating_sub(&self, d: Nanos) -> Self {
        self.0
            .checked_sub(Duration::from(d))
            .map_or(*self, TokioInstant)
    }
}

/// The bucket's clock: tokio's (so `tokio::time::pause` drives it).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}
