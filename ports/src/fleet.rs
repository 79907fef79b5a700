//! What the processes of one deployment share beyond the queue and the log
//! ([`Fleet`]): conversation leases, so one process at a time works a
//! conversation, and quota buckets, so a downstream's per-account quota is
//! spent once by the whole fleet rather than once per process.
//!
//! Only the AWS backend has a fleet (several `serve` processes and Lambda
//! instances on one queue); the embedded backend is one process, whose
//! in-memory group set and local buckets already are the whole fleet.
//!
//! Buckets are GCRA (the algorithm of `governor`, which the local buckets
//! use): the shared state is one "theoretical arrival time" (`tat`) per
//! bucket. Taking `k` tokens moves it to `max(tat, now) + k × interval`,
//! allowed while that stays within `burst × interval` of now. Any window of
//! length `W` then holds at most `burst + W / interval` calls fleet-wide —
//! the same bound a single process's bucket has.
use std::time::Duration;

use async_trait::async_trait;

use crate::Result;

/// A bucket's shape: one token every `interval`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time per token.
    pub interval: Duration,
    /// Tokens that may be taken at once.
    pub burst: u32,
}

/// The answer to a take: `tokens` granted now (possibly fewer than asked),
/// and, when none were, how long until one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Tokens granted, to be spent right away.
    pub tokens: u32,
    /// With no token granted: when to ask again.
    pub retry_in: Duration,
}

/// A bucket's shared state, in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketState {
    /// GCRA's theoretical arrival time (0: never taken from).
    pub tat_us: i64,
    /// No token before this (a downstream's 429); 0: not paused.
    pub paused_until_us: i64,
}

impl BucketState {
    /// Take up to `want` tokens at `now_us`: the grant and the state after
    /// it (unchanged when nothing was granted).
    pub fn take(self, now_us: i64, want: u32, rate: Rate) -> (Grant, BucketState) {
        if self.paused_until_us > now_us {
            let wait = self.paused_until_us - now_us;
            return (refusal(wait), self);
        }
        let interval = i64::try_from(rate.interval.as_micros())
            .unwrap_or(i64::MAX)
            .max(1);
        let burst = i64::from(rate.burst.max(1));
        let start = self.tat_us.max(now_us);
        // tokens k allowed while start + k*interval - now <= burst*interval
        let room = (now_us + burst * interval - start) / interval;
        let k = room.clamp(0, i64::from(want));
        if k == 0 {
            return (refusal(start + interval - burst * interval - now_us), self);
        }
        let next = BucketState {
            tat_us: start + k * interval,
            ..self
        };
        (
            Grant {
                tokens: u32::try_from(k).unwrap_or(0),
                retry_in: Duration::ZERO,
            },
            next,
        )
    }
}

fn refusal(wait_us: i64) -> Grant {
    Grant {
        tokens: 0,
        retry_in: Duration::from_micros(u64::try_from(wait_us.max(1)).unwrap_or(1)),
    }
}

/// Leases and buckets shared by the processes of one deployment.
#[async_trait]
pub trait Fleet: Send + Sync + std::fmt::Debug {
    /// Hold the lease `key` for `owner` for `hold` from now: taken when it
    /// is free, expired or already `owner`'s (then renewed). `false` when
    /// another owner holds it.
    async fn lease(&self, key: &str, owner: &str, hold: Duration) -> Result<bool>;
    /// Give `key` up if `owner` still holds it.
    async fn release(&self, key: &str, owner: &str) -> Result<()>;
    /// Take up to `want` tokens of `bucket`, shaped by `rate`.
    async fn take(&self, bucket: &str, want: u32, rate: Rate) -> Result<Grant>;
    /// Grant no token of `bucket` for `d` from now (never shortens a pause).
    async fn pause(&self, bucket: &str, d: Duration) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;
    /// Richpanel's production shape: 48 per 30 s (625 ms each), burst 2.
    const RICHPANEL: Rate = Rate {
        interval: Duration::from_millis(625),
        burst: 2,
    };

    /// Calls granted at `now` by repeatedly asking for `want`.
    fn drain(mut s: BucketState, now: i64, want: u32) -> (u32, BucketState) {
        let mut total = 0;
        loop {
            let (g, next) = s.take(now, want, RICHPANEL);
            if g.tokens == 0 {
                return (total, s);
            }
            total += g.tokens;
            s = next;
        }
    }

    #[test]
    fn a_fresh_bucket_grants_its_burst_then_one_per_interval() {
        let (n, s) = drain(BucketState::default(), 1_000_000 * MS, 5);
        assert_eq!(n, 2);
        let (g, _) = s.take(1_000_000 * MS, 1, RICHPANEL);
        assert_eq!(g.tokens, 0);
        assert_eq!(g.retry_in, Duration::from_millis(625));
        let (n, _) = drain(s, 1_000_000 * MS + 625 * MS, 5);
        assert_eq!(n, 1);
    }

    #[test]
    fn no_window_of_30_s_holds_more_than_the_quota_allows() {
        // Greedy takers of random sizes, asking every 10 ms for 5 minutes.
        let mut s = BucketState::default();
        let mut grants: Vec<i64> = Vec::new();
        let start = 1_000_000 * MS;
        for step in 0..30_000 {
            let now = start + step * 10 * MS;
            let (g, next) = s.take(now, 1 + (step % 3) as u32, RICHPANEL);
            s = next;
            grants.extend(std::iter::repeat_n(now, g.tokens as usize));
        }
        let most = grants
            .iter()
            .map(|t| {
                grants
                    .iter()
                    .filter(|u| **u >= *t && **u < t + 30_000 * MS)
                    .count()
            })
            .max()
            .unwrap_or(0);
        // 48 per 30 s with a burst of 2: the burst plus 47 intervals fit in
        // a half-open 30 s window, one short of Richpanel's 50.
        assert_eq!(most, 49, "48 per 30 s + burst 2");
        // ...and the drain keeps pace with the rate: the burst of 2 at the
        // start, then one every 625 ms up to the last ask at 299.99 s (479).
        assert_eq!(grants.len(), 481);
    }

    #[test]
    fn a_pause_refuses_until_it_ends() {
        let now = 5_000_000 * MS;
        let s = BucketState {
            tat_us: 0,
            paused_until_us: now + 7_000 * MS,
        };
        let (g, same) = s.take(now, 1, RICHPANEL);
        assert_eq!((g.tokens, g.retry_in), (0, Duration::from_secs(7)));
        assert_eq!(same, s);
        assert_eq!(s.take(now + 7_000 * MS, 1, RICHPANEL).0.tokens, 1);
    }
}
