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
