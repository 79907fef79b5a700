//! A [`super::Limiter`]'s side of the fleet's shared bucket: tokens taken
//! in small grants, one take in flight per process and bucket.
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ports::{Fleet, Rate};
use tokio::time::Instant;

/// The shared bucket of one quota, as this process draws on it.
#[derive(Debug)]
pub(super) struct FleetBucket {
    name: &'static str,
    fleet: Arc<dyn Fleet>,
    rate: Rate,
    /// Granted tokens not spent yet, and until when they may be spent.
    stock: Mutex<(u32, Instant)>,
    /// One take in flight at a time; the others wait and use its grant.
    taking: tokio::sync::Mutex<()>,
    /// Callers waiting for a token here: how many to ask for at once.
    waiters: AtomicU32,
    /// The last take failed (logged once per outage).
    unreachable: AtomicBool,
}

/// Counts a caller as waiting while it lives.
pub(super) struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FleetBucket {
    pub(super) fn new(name: &'static str, fleet: Arc<dyn Fleet>, rate: Rate) -> Self {
        FleetBucket {
            name,
            fleet,
            rate,
            stock: Mutex::new((0, Instant::now())),
            taking: tokio::sync::Mutex::new(()),
            waiters: AtomicU32::new(0),
            unreachable: AtomicBool::new(false),
        }
    }

    pub(super) fn waiting(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.waiters)
    }

    /// A granted token not yet spent, if one is still fresh.
    fn spend(&self) -> bool {
        let mut stock = self.stock.lock().unwrap_or_else(|e| e.into_inner());
        if stock.0 > 0 && stock.1 > Instant::now() {
            stock.0 -= 1;
            return true;
        }
        false
    }

    /// `Some(Ok)`: a token; `Some(Err(at))`: none before `at`; `None`: the
    /// shared bucket cannot be reached (use the local share).
    pub(super) async fn take(&self) -> Option<Result<(), Instant>> {
        if self.spend() {
            return Some(Ok(()));
        }
        let _turn = self.taking.lock().await;
        // Another caller's grant may have arrived while this one waited.
        if self.spend() {
            return Some(Ok(()));
        }
        let want = self
            .waiters
            .load(Ordering::Relaxed)
            .clamp(1, self.rate.burst);
        let asked = Instant::now();
        match self.fleet.take(self.name, want, self.rate).await {
            Ok(grant) => {
                if self.unreachable.swap(false, Ordering::Relaxed) {
                    tracing::info!(bucket = self.name, "shared quota bucket reachable again");
                }
                if grant.tokens == 0 {
                    crate::metrics::bucket_fleet_take(self.name, "refused");
                    return Some(Err(asked + grant.retry_in));
                }
                crate::metrics::bucket_fleet_take(self.name, "granted");
                // Granted tokens are counted from the moment of the grant:
                // spent later than one interval, they would crowd the calls
                // the bucket grants after them.
                let mut stock = self.stock.lock().unwrap_or_else(|e| e.into_inner());
                *stock = (grant.tokens - 1, asked + self.rate.interval);
                Some(Ok(()))
            }
            Err(e) => {
                crate::metrics::bucket_fleet_take(self.name, "unreachable");
                if !self.unreachable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        bucket = self.name,
                        error = %e,
                        "shared quota bucket unreachable: using this process's share"
                    );
                }
                None
            }
        }
    }

    /// Pause the shared bucket for `d` (in the background: the caller has
    /// its 429 already and pauses locally too).
    pub(super) fn pause(&self, d: Duration) {
        let (fleet, name) = (self.fleet.clone(), self.name);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = fleet.pause(name, d).await {
                    tracing::warn!(bucket = name, error = %e, "could not pause the shared quota bucket");
                }
            });
        }
    }
}
