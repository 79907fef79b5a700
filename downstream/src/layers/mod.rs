//! The safety layers, one folder each (tower style: the layer, its service,
//! its named error, its tests). They are composed in one place only:
//! `crate::stack`.
//!
//! Every layer wraps a `Service<StackRequest, Response = Reply, Error =
//! CallError>`; its own error converts into [`CallError`].
use futures::future::BoxFuture;
use tower::{Service, ServiceExt};

use crate::{CallError, Reply, StackRequest};

pub mod breaker;
pub mod bucket;
pub mod kill_switch;
pub mod retry;
pub mod shadow;
pub mod timeout;

/// The future every layer returns.
pub type ResponseFuture = BoxFuture<'static, Result<Reply, CallError>>;

/// What one safety layer does around a call of the inner service: check,
/// wait, record — then (maybe) call it. Each layer is a small `Around`
/// value; [`AroundLayer`] and [`AroundService`] are the one tower
/// `Layer`/`Service` implementation they share.
pub trait Around: Clone + Send + Sync + 'static {
    /// Handle `req`, calling `inner` unless this layer answers itself.
    fn around<S>(
        self,
        inner: S,
        req: StackRequest,
    ) -> impl std::future::Future<Output = Result<Reply, CallError>> + Send + 'static
    where
        S: Service<StackRequest, Response = Reply, Error = CallError> + Send + 'static,
        S::Future: Send;
}

/// The tower `Layer` of an [`Around`].
#[derive(Debug, Clone)]
pub struct AroundLayer<A>(A);

impl<S, A: Around> tower::Layer<S> for AroundLayer<A> {
    type Service = AroundService<S, A>;
    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            inner,
            around: self.0.clone(),
        }
    }
}

/// The tower `Service` of an [`Around`]: always ready (back-pressure lives
/// inside the future, see [`call_inner`]).
#[derive(Debug, Clone)]
pub struct AroundService<S, A> {
    inner: S,
    around: A,
}

impl<S, A> Service<StackRequest> for AroundService<S, A>
where
    A: Around,
    S: Service<StackRequest, Response = Reply, Error = CallError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Reply;
    type Error = CallError;
    type Future = ResponseFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), CallError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: StackRequest) -> Self::Future {
        Box::pin(self.around.clone().around(self.inner.clone(), req))
    }
}

/// Drive an owned clone of the inner service: wait until it is ready, then
/// call it. Layers report themselves always ready and apply back-pressure
/// inside the future, so an async flag read or a token wait never holds a
/// readiness slot of the inner service.
pub(crate) async fn call_inner<S>(mut inner: S, req: StackRequest) -> Result<Reply, CallError>
where
    S: Service<StackRequest, Response = Reply, Error = CallError>,
{
    inner.ready().await?.call(req).await
}

#[cfg(test)]
pub(crate) mod testing {
    //! Shared helpers for layer tests.
    use super::*;
    use crate::{Bucket, CallContext, Downstream, HttpReply, Method};
    use std::sync::Arc;
    use tower_test::mock;

    pub type Mock = tower::util::MapErr<
        mock::Mock<StackRequest, Reply>,
        fn(Box<dyn std::error::Error + Send + Sync>) -> CallError,
    >;

    /// A tower-test mock whose errors are `CallError`s again.
    pub fn mock() -> (Mock, mock::Handle<StackRequest, Reply>) {
        let (svc, handle) = mock::pair::<StackRequest, Reply>();
        (svc.map_err(CallError::from_boxed as fn(_) -> _), handle)
    }

    /// Fails if `handle` receives a request within `within` (a dropped
    /// service, which ends the stream, counts as "no request").
    pub async fn assert_no_request(
        handle: &mut mock::Handle<StackRequest, Reply>,
        within: std::time::Duration,
    ) {
        let got = tokio::time::timeout(within, handle.next_request()).await;
        assert!(
            !matches!(got, Ok(Some(_))),
            "an unexpected request reached the inner service"
        );
    }

    pub fn ok() -> Reply {
        Reply::Sent(HttpReply {
            status: 200,
            body: bytes::Bytes::from_static(b"{}"),
        })
    }

    pub fn write(customer_facing: bool) -> StackRequest {
        StackRequest {
            downstream: Downstream::Richpanel,
            bucket: Bucket::RichpanelWrite,
            method: Method::Put,
            url: "http://fake/v1/tickets/1".into(),
            body: Some(Arc::new(serde_json::json!({"ticket": {"tags": ["x"]}}))),
            write: true,
            optional: false,
            ctx: Some(CallContext {
                idempotency_key: "k1".into(),
                channel: Some("email".into()),
                template: Some("faq_order".into()),
                customer_facing,
                shadow: false,
            }),
            auth: Some(crate::Auth {
                header: "x-richpanel-key",
                value: "secret".into(),
            }),
        }
    }

    pub fn read() -> StackRequest {
        StackRequest {
            bucket: Bucket::RichpanelRead,
            method: Method::Get,
            body: None,
            write: false,
            ctx: None,
            ..write(false)
        }
    }
}
