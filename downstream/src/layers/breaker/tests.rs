use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceExt;

use super::*;
use crate::layers::testing::{assert_no_request, mock, ok, read};
use tower::Layer;

#[derive(Debug)]
struct Manual(Mutex<Instant>);

impl Clock for Manual {
    fn now(&self) -> Instant {
        *self.0.lock().expect("lock")
    }
}

fn cfg() -> BreakerConfig {
    BreakerConfig {
        window_ms: 10_000,
        min_requests: 4,
        error_rate: 0.5,
        open_ms: 5_000,
    }
}

#[test]
fn state_machine_with_a_manual_clock() {
    let clock = Arc::new(Manual(Mutex::new(Instant::now())));
    let b = Arc::new(Breaker::new(Downstream::Shopify, cfg(), clock.clone()));
    // Three failures: below the minimum request count, stays closed.
    for _ in 0..3 {
        b.acquire().expect("closed").record(Outcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // Old outcomes leave the window.
    *clock.0.lock().expect("lock") += Duration::from_secs(11);
    b.acquire().expect("closed").record(Outcome::Failure);
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "window rolled: 1 call only"
    );
    for _ in 0..2 {
        b.acquire().expect("closed").record(Outcome::Success);
    }
    b.acquire().expect("closed").record(Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Open, "2 of 4 failed = 50%");
    assert_eq!(
        b.acquire().expect_err("fails fast"),
        BreakerOpen(Downstream::Shopify)
    );
    *clock.0.lock().expect("lock") += Duration::from_secs(5);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let probe = b.acquire().expect("one probe");
    assert!(b.acquire().is_err(), "only one probe at a time");
    probe.record(Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Open, "failed probe re-opens");
    *clock.0.lock().expect("lock") += Duration::from_secs(5);
    drop(b.acquire().expect("probe")); // cancelled probe frees the slot
    b.acquire().expect("probe again").record(Outcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn client_errors_do_not_open_it() {
    let b = Arc::new(Breaker::new(
        Downstream::Richpanel,
        cfg(),
        Arc::new(TokioClock),
    ));
    for _ in 0..20 {
        let r = Err(CallError::from_status(404, None));
        b.acquire().expect("closed").record(outcome(&r));
        let r = Err(CallError::RateLimited { retry_after: None });
        b.acquire().expect("closed").record(outcome(&r));
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn layer_stops_calls_while_open_and_probe_closes_it() {
    let b = Arc::new(Breaker::new(
        Downstream::Openai,
        cfg(),
        Arc::new(TokioClock),
    ));
    let (inner, mut handle) = mock();
    let svc = BreakerLayer::new(b.clone()).layer(inner);
    for _ in 0..4 {
        let call = tokio::spawn(svc.clone().oneshot(read()));
        let (_, send) = handle.next_request().await.expect("reaches inner");
        send.send_error(CallError::Http {
            status: 500,
            retryable: true,
        });
        assert!(call.await.expect("join").is_err());
    }
    assert_eq!(b.state(), BreakerState::Open);
    let err = svc.clone().oneshot(read()).await.expect_err("fails fast");
    assert_eq!(
        err,
        CallError::CircuitOpen {
            downstream: Downstream::Openai
        }
    );
    assert_no_request(&mut handle, Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let call = tokio::spawn(svc.clone().oneshot(read()));
    let (_, send) = handle.next_request().await.expect("probe reaches inner");
    send.send_response(ok());
    assert!(call.await.expect("join").is_ok());
    assert_eq!(b.state(), BreakerState::Closed);
}
