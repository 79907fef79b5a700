use tokio::time::Instant;
use tower::ServiceExt;

use super::*;
use crate::layers::testing::{assert_no_request, mock, ok, write};

fn layer(max_retries: usize) -> RetryLayer {
    let cfg = RetryConfig {
        max_retries,
        base_delay_ms: 100,
        max_delay_ms: 1_000,
        ..RetryConfig::default()
    };
    RetryLayer::new(cfg, Duration::from_secs(5))
}

#[tokio::test(start_paused = true)]
async fn retries_5xx_then_succeeds() {
    let (inner, mut handle) = mock();
    let call = tokio::spawn(layer(3).layer(inner).oneshot(write(false)));
    for _ in 0..2 {
        let (_, send) = handle.next_request().await.expect("attempt");
        send.send_error(CallError::Http {
            status: 503,
            retryable: true,
        });
    }
    let (_, send) = handle.next_request().await.expect("third attempt");
    send.send_response(ok());
    assert!(call.await.expect("join").is_ok());
}

#[tokio::test(start_paused = true)]
async fn never_retries_client_errors() {
    for status in [400u16, 401, 403, 404, 422] {
        let (inner, mut handle) = mock();
        let call = tokio::spawn(layer(3).layer(inner).oneshot(write(false)));
        let (_, send) = handle.next_request().await.expect("attempt");
        send.send_error(CallError::from_status(status, None));
        let err = call.await.expect("join").expect_err("fails");
        assert_eq!(
            err,
            CallError::Http {
                status,
                retryable: false
            }
        );
        assert_no_request(&mut handle, Duration::from_secs(60)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded() {
    let (inner, mut handle) = mock();
    let call = tokio::spawn(layer(2).layer(inner).oneshot(write(false)));
    for _ in 0..3 {
        let (_, send) = handle.next_request().await.expect("attempt");
        send.send_error(CallError::Timeout);
    }
    assert_eq!(
        call.await.expect("join").expect_err("gives up"),
        CallError::Timeout
    );
    assert_no_request(&mut handle, Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_never_early() {
    let (inner, mut handle) = mock();
    let call = tokio::spawn(layer(3).layer(inner).oneshot(write(false)));
    let (_, send) = handle.next_request().await.expect("attempt");
    let t429 = Instant::now();
    send.send_error(CallError::RateLimited {
        retry_after: Some(Duration::from_secs(3)),
    });
    let (_, send) = handle.next_request().await.expect("second attempt");
    assert!(
        t429.elapsed() >= Duration::from_secs(3),
        "waited {:?}",
        t429.elapsed()
    );
    send.send_response(ok());
    assert!(call.await.expect("join").is_ok());
}

#[tokio::test(start_paused = true)]
async fn long_retry_after_goes_back_to_the_worker() {
    let (inner, mut handle) = mock();
    let call = tokio::spawn(layer(3).layer(inner).oneshot(write(false)));
    let (_, send) = handle.next_request().await.expect("attempt");
    let long = CallError::RateLimited {
        retry_after: Some(Duration::from_secs(30)),
    };
    send.send_error(long.clone());
    assert_eq!(call.await.expect("join").expect_err("handed back"), long);
}

#[tokio::test(start_paused = true)]
async fn budget_caps_retries_across_calls() {
    let cfg = RetryConfig {
        max_retries: 5,
        base_delay_ms: 1,
        max_delay_ms: 1,
        budget_percent: 0.0,
        budget_min_per_sec: 0,
    };
    let (inner, mut handle) = mock();
    let svc = RetryLayer::new(cfg, Duration::from_secs(5)).layer(inner);
    let call = tokio::spawn(svc.oneshot(write(false)));
    let (_, send) = handle.next_request().await.expect("attempt");
    send.send_error(CallError::Http {
        status: 500,
        retryable: true,
    });
    assert!(call.await.expect("join").is_err());
    assert_no_request(&mut handle, Duration::from_secs(5)).await;
}

#[test]
fn full_jitter_stays_within_the_delay() {
    for _ in 0..1000 {
        assert!(
            next_delay(Duration::from_millis(100), &CallError::Timeout)
                <= Duration::from_millis(100)
        );
    }
    let ra = CallError::RateLimited {
        retry_after: Some(Duration::from_secs(2)),
    };
    assert!(next_delay(Duration::from_millis(100), &ra) >= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn replies_are_not_retried_after_an_ambiguous_failure() {
    for error in [
        CallError::Http {
            status: 500,
            retryable: true,
        },
        CallError::Timeout,
        CallError::Transport("connection reset".into()),
    ] {
        let (inner, mut handle) = mock();
        let call = tokio::spawn(layer(3).layer(inner).oneshot(write(true)));
        let (_, send) = handle.next_request().await.expect("attempt");
        send.send_error(error.clone());
        assert_eq!(call.await.expect("join").expect_err("fails"), error);
        assert_no_request(&mut handle, Duration::from_secs(60)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn replies_are_retried_after_a_429() {
    let (inner, mut handle) = mock();
    let call = tokio::spawn(layer(3).layer(inner).oneshot(write(true)));
    let (_, send) = handle.next_request().await.expect("attempt");
    send.send_error(CallError::from_status(429, Some(Duration::from_secs(1))));
    let (_, send) = handle.next_request().await.expect("retry after 429");
    send.send_response(ok());
    assert!(call.await.expect("join").is_ok());
}
