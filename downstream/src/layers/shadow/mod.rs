//! Shadow mode: a write is built, returned as the [`RecordedRequest`] that
//! would have been sent, and not sent. On when the `shadow` flag (or the
//! `SWITCHYARD_SHADOW` floor) is on, always for a downstream without
//! credentials, and for a write whose [`CallContext::shadow`] says it was
//! decided in shadow mode. Reads pass through.
//!
//! [`CallContext::shadow`]: crate::CallContext::shadow This layer never fails, so it has no
//! error type of its own.
//!
//! [`RecordedRequest`]: crate::RecordedRequest
use std::sync::Arc;

use tower::Service;

use super::{Around, AroundLayer, call_inner};
use crate::flags::FlagCache;
use crate::{CallError, Reply, StackRequest};

/// Builds, records and returns writes instead of sending them.
#[derive(Debug, Clone)]
pub struct ShadowGate {
    flags: Arc<FlagCache>,
}

/// Shadow mode as a tower layer.
pub type ShadowLayer = AroundLayer<ShadowGate>;

impl ShadowLayer {
    /// The layer reading `flags`.
    pub fn new(flags: Arc<FlagCache>) -> Self {
        AroundLayer(ShadowGate { flags })
    }
}

impl Around for ShadowGate {
    fn around<S>(
        self,
        inner: S,
        req: StackRequest,
    ) -> impl std::future::Future<Output = Result<Reply, CallError>> + Send + 'static
    where
        S: Service<StackRequest, Response = Reply, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        async move {
            let decided_shadow = req.ctx.as_ref().is_some_and(|c| c.shadow);
            if req.write && (req.auth.is_none() || decided_shadow || self.flags.get().await.shadow)
            {
                crate::metrics::shadowed(req.downstream.as_str());
                return Ok(Reply::Shadowed(req.recorded()));
            }
            call_inner(inner, req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ports::{FlagStore, KillSwitch};
    use tower::ServiceExt;

    use super::*;
    use crate::flags::test_store::MemFlags;
    use crate::layers::testing::{assert_no_request, mock, ok, read, write};
    use tower::Layer;

    #[tokio::test(start_paused = true)]
    async fn shadow_returns_the_full_request_and_sends_nothing() {
        let store = Arc::new(MemFlags::default());
        store.set("shadow", "on", "t", "t").await.expect("set");
        let cache = Arc::new(FlagCache::new(
            store,
            Duration::from_millis(200),
            KillSwitch::Off,
            false,
        ));
        let (inner, mut handle) = mock();
        let svc = ShadowLayer::new(cache).layer(inner);
        let req = write(true);
        let Reply::Shadowed(rec) = svc.clone().oneshot(req.clone()).await.expect("ok") else {
            panic!("expected a shadowed reply");
        };
        assert_eq!(rec.method, "PUT");
        assert_eq!(rec.url, req.url);
        assert_eq!(rec.body.as_ref(), req.body.as_deref());
        assert!(
            !format!("{rec:?}").contains("secret"),
            "credentials are not recorded"
        );
        // Reads pass in shadow mode.
        let call = tokio::spawn(svc.oneshot(read()));
        let (got, send) = handle.next_request().await.expect("read reaches inner");
        assert!(!got.write);
        send.send_response(ok());
        assert!(matches!(call.await.expect("join"), Ok(Reply::Sent(_))));
        assert_no_request(&mut handle, Duration::from_millis(10)).await;
    }

    /// With the flag off, a write is still shadowed when its downstream
    /// has no credentials, or when it was decided in shadow mode (its
    /// request was not made durable before the call).
    #[tokio::test(start_paused = true)]
    async fn shadowed_with_the_flag_off_without_credentials_or_when_decided_in_shadow() {
        let cache = Arc::new(FlagCache::new(
            Arc::new(MemFlags::default()),
            Duration::from_millis(200),
            KillSwitch::Off,
            false,
        ));
        type Change = fn(&mut StackRequest);
        let cases: [(&str, Change); 2] = [
            ("no credentials", |req| req.auth = None),
            ("decided in shadow", |req| {
                if let Some(ctx) = req.ctx.as_mut() {
                    ctx.shadow = true;
                }
            }),
        ];
        for (case, change) in cases {
            let (inner, mut handle) = mock();
            let mut req = write(true);
            change(&mut req);
            let out = ShadowLayer::new(cache.clone())
                .layer(inner)
                .oneshot(req)
                .await
                .expect("ok");
            assert!(matches!(out, Reply::Shadowed(_)), "{case}");
            assert_no_request(&mut handle, Duration::from_millis(10)).await;
        }
    }
}
