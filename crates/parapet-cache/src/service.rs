//! The tower service.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::flow::{fast_hit, serve};
use crate::shared::Shared;
use crate::status::{CacheStatus, Forward};
use crate::{CaptureBody, ResponseFuture, metrics};

/// The cache in front of a service `S`; built by [`CacheLayer`](crate::CacheLayer).
#[derive(Clone)]
pub struct Cache<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S> Cache<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn is_grpc<B>(request: &Request<B>) -> bool {
    parapet_core::grpc::is_grpc(request)
}

/// Methods whose success invalidates what is stored for the target (RFC 9111 §4.4): all
/// but the safe ones (RFC 9110 §9.2.1).
fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl<S, ReqBody, B> Service<Request<ReqBody>> for Cache<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    type Response = Response<parapet_core::ResponseBody<CaptureBody<B>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, B, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Shared::fill_host(&mut request);
        // Whatever the method: an unsafe request's invalidation is keyed on the host too.
        if let Some(why) = Shared::bad_host(&request) {
            return ResponseFuture::ready(crate::flow::bad_host(&shared, why));
        }
        let method = request.method();
        if (method == Method::GET || method == Method::HEAD)
            && !is_grpc(&request)
            && let Some(response) = fast_hit(&shared, &request)
        {
            // A fresh hit in memory needs neither the inner service nor a task; the
            // readiness reserved by `poll_ready` carries over to the next call.
            return ResponseFuture::ready(response);
        }
        // The instance driven ready is the one called (or moved into the flow).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_grpc(&request) {
            // gRPC rides on POST with its own semantics: untouched, no Cache-Status.
            return ResponseFuture::pass(inner.call(request), shared, None, None);
        }
        let method = request.method();
        if method == Method::GET || method == Method::HEAD {
            return ResponseFuture::flow(Box::pin(serve(shared, inner, request)));
        }
        shared.counter(|c| &c.bypassed);
        metrics::request(metrics::Outcome::Pass);
        let invalidate = if is_unsafe(method) {
            shared.key_of(&request)
        } else {
            None
        };
        let status = Some(CacheStatus::forward(Forward::Method));
        ResponseFuture::pass(inner.call(request), shared, invalidate, status)
    }
}

impl<S> std::fmt::Debug for Cache<S>
where
    S: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
