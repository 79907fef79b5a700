use tower::ServiceExt;

use super::*;
use crate::layers::testing::{mock, ok, write};
use tower::Layer;

fn limiter(requests: u32, period_ms: u64, burst: u32, max_wait_ms: u64) -> Arc<Limiter> {
    let q = QuotaConfig {
        requests,
        period_ms,
        burst,
    };
    Arc::new(Limiter::new("test", &q, Duration::from_millis(max_wait_ms)))
}

#[tokio::test(start_paused = true)]
async fn spaces_calls_at_the_quota_rate() {
    let l = limiter(50, 30_000, 1, 60_000);
    let start = Instant::now();
    for _ in 0..50 {
        l.acquire().await.expect("token");
    }
    // 1 immediately + 49 × 600 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(49 * 600));
}

#[tokio::test(start_paused = true)]
async fn wait_is_bounded() {
    let l = limiter(1, 10_000, 1, 2_000);
    l.acquire().await.expect("first token");
    let start = Instant::now();
    let err = l.acquire().await.expect_err("would wait 10 s");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "fails fast, does not sleep first"
    );
    assert!(err.retry_after > Duration::from_secs(2));
    assert!(CallError::from(err).is_retryable());
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_the_bucket_for_retry_after() {
    let l = limiter(100, 1_000, 10, 10_000);
    let (inner, mut handle) = mock();
    let svc = BucketLayer::new(l.clone()).layer(inner);
    let call = tokio::spawn(svc.clone().oneshot(write(false)));
    let (_, send) = handle.next_request().await.expect("request");
    let t429 = Instant::now();
    send.send_error(CallError::RateLimited {
        retry_after: Some(Duration::from_secs(3)),
    });
    assert!(call.await.expect("join").is_err());
    // Tokens are plentiful, yet the next call waits out the pause.
    let call = tokio::spawn(svc.oneshot(write(false)));
    let (_, send) = handle.next_request().await.expect("after the pause");
    assert!(
        t429.elapsed() >= Duration::from_secs(3),
        "sent after {:?}",
        t429.elapsed()
    );
    send.send_response(ok());
    assert!(call.await.expect("join").is_ok());
}

/// The fleet's bucket in memory, on tokio's (paused) clock; `down` makes
/// every call fail as an unreachable table would.
#[derive(Debug)]
struct MemFleet {
    start: Instant,
    state: Mutex<ports::BucketState>,
    down: std::sync::atomic::AtomicBool,
    takes: std::sync::atomic::AtomicU32,
    pauses: Mutex<Vec<Duration>>,
}

impl MemFleet {
    fn new() -> Arc<MemFleet> {
        Arc::new(MemFleet {
            start: Instant::now(),
            state: Mutex::default(),
            down: Default::default(),
            takes: Default::default(),
            pauses: Mutex::default(),
        })
    }
    fn now_us(&self) -> i64 {
        1_000_000_000_000 + self.start.elapsed().as_micros() as i64
    }
    fn check(&self) -> ports::Result<()> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ports::PortError::Unavailable("table unreachable".into()));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ports::Fleet for MemFleet {
    async fn lease(&self, _: &str, _: &str, _: Duration) -> ports::Result<bool> {
        Ok(true)
    }
    async fn release(&self, _: &str, _: &str) -> ports::Result<()> {
        Ok(())
    }
    async fn take(&self, _: &str, want: u32, rate: ports::Rate) -> ports::Result<ports::Grant> {
        self.check()?;
        self.takes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut s = self.state.lock().expect("lock");
        let (grant, next) = s.take(self.now_us(), want, rate);
        *s = next;
        Ok(grant)
    }
    async fn pause(&self, _: &str, d: Duration) -> ports::Result<()> {
        self.check()?;
        self.pauses.lock().expect("lock").push(d);
        let mut s = self.state.lock().expect("lock");
        s.paused_until_us = s.paused_until_us.max(self.now_us() + d.as_micros() as i64);
        Ok(())
    }
}

fn shared(fleet: &Arc<MemFleet>, requests: u32, period_ms: u64, burst: u32) -> Arc<Limiter> {
    let q = QuotaConfig {
        requests,
        period_ms,
        burst,
    };
    let fleet: Arc<dyn ports::Fleet> = fleet.clone();
    Arc::new(Limiter::shared(
        "test",
        &q,
        Duration::from_secs(60),
        fleet,
        4,
    ))
}

#[tokio::test(start_paused = true)]
async fn two_processes_on_one_shared_bucket_spend_one_quota() {
    let fleet = MemFleet::new();
    let (a, b) = (shared(&fleet, 10, 1_000, 2), shared(&fleet, 10, 1_000, 2));
    let start = Instant::now();
    let spend = |l: Arc<Limiter>| {
        tokio::spawn(async move {
            for _ in 0..10 {
                l.acquire().await.expect("token");
            }
        })
    };
    let (ta, tb) = (spend(a), spend(b));
    ta.await.expect("join");
    tb.await.expect("join");
    // 20 calls of a 10 per second quota with a burst of 2: 2 at once, then
    // one per 100 ms — as one process alone would.
    assert_eq!(start.elapsed(), Duration::from_millis(1_800));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_shared_bucket_leaves_this_process_its_share() {
    let fleet = MemFleet::new();
    fleet.down.store(true, std::sync::atomic::Ordering::Relaxed);
    // 40 per second over a fleet of 4: 10 per second here, no burst.
    let l = shared(&fleet, 40, 1_000, 5);
    let start = Instant::now();
    for _ in 0..11 {
        l.acquire().await.expect("token");
    }
    assert_eq!(start.elapsed(), Duration::from_millis(1_000));
    // Back: the shared bucket serves again (its full burst at once).
    fleet
        .down
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let before = fleet.takes.load(std::sync::atomic::Ordering::Relaxed);
    l.acquire().await.expect("token");
    assert_eq!(
        fleet.takes.load(std::sync::atomic::Ordering::Relaxed),
        before + 1
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_in_one_process_pauses_the_shared_bucket() {
    let fleet = MemFleet::new();
    let (a, b) = (
        shared(&fleet, 100, 1_000, 10),
        shared(&fleet, 100, 1_000, 10),
    );
    let (inner, mut handle) = mock();
    let svc = BucketLayer::new(a).layer(inner);
    let call = tokio::spawn(svc.oneshot(write(false)));
    let (_, send) = handle.next_request().await.expect("request");
    let t429 = Instant::now();
    send.send_error(CallError::RateLimited {
        retry_after: Some(Duration::from_secs(3)),
    });
    assert!(call.await.expect("join").is_err());
    tokio::task::yield_now().await;
    assert_eq!(
        *fleet.pauses.lock().expect("lock"),
        [Duration::from_secs(3)]
    );
    // The other process never saw the 429, yet waits it out.
    b.acquire().await.expect("token");
    assert!(
        t429.elapsed() >= Duration::from_secs(3),
        "{:?}",
        t429.elapsed()
    );
}
