//! Shadow mode: a write is built, returned as the [`RecordedRequest`] that
//! would have been sent, and not sent. On when the `shadow` flag (or the
//! `SWITCHYARD_SHADOW` floor) is on, and always for a downstream without
//! credentials. Reads pass through. This layer never fails, so it has no
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
            if req.write && (req.auth.is_none() || self.flags.get().await.shadow) {
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

    #[tokio::test(start_paused = true)]
    async fn no_credentials_means_shadow_even_with_the_flag_off() {
        let cache = Arc::new(FlagCache::new(
            Arc::new(MemFlags::default()),
            Duration::from_millis(200),
            KillSwitch::Off,
            false,
        ));
        let (inner, _handle) = mock();
        let mut req = write(false);
        req.auth = None;
        let out = ShadowLayer::new(cache)
            .layer(inner)
            .oneshot(req)
            .await
            .expect("ok");
        assert!(matches!(out, Reply::Shadowed(_)));
    }
}
