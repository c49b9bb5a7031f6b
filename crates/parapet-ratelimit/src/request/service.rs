//! The tower service.

use std::task::{Context, Poll};

use http::{Request, Response};
use parapet_core::grpc::is_grpc;
use tower_service::Service;

use crate::request::limiter::{Begin, Verdict};
use crate::response::grpc;
use crate::{RateLimiter, RequestHead, ResponseBody, ResponseFuture};

/// The service made by [`RateLimitLayer`](crate::RateLimitLayer): decides, then calls the
/// inner service or answers itself. The inner service's error type is kept as is.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    limiter: RateLimiter,
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, limiter: RateLimiter) -> Self {
        Self { inner, limiter }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let begin = self.limiter.begin(&RequestHead::of(&request));
        match begin {
            // Decided now: the instance driven ready is the one called.
            Begin::Done(Verdict::Admit(charged)) => ResponseFuture::calling(
                self.inner.call(request),
                charged,
                self.limiter.header_style(),
            ),
            Begin::Done(Verdict::Refuse(response)) if is_grpc(&request) => {
                ResponseFuture::refused(grpc::refusal(response))
            }
            Begin::Done(Verdict::Refuse(response)) => ResponseFuture::refused(response),
            // Decided later: keep the ready instance for then, leave a clone here.
            Begin::Wait(pending) => {
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(pending, self.limiter.clone(), ready, request)
            }
        }
    }
}
