//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use parapet_core::ResponseBody;
use pin_project_lite::pin_project;

use crate::flow::{invalidate_after, pass};
use crate::shared::Shared;
use crate::status::CacheStatus;
use crate::{CacheKey, CaptureBody};

type Flow<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<CaptureBody<B>>>, E>> + Send>>;

pin_project! {
    /// The future of [`Cache`](crate::Cache): a `GET` or `HEAD` runs the cache's flow
    /// (boxed); any other request is the inner service's future, passed through.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Pass {
            #[pin]
            future: F,
            shared: Arc<Shared>,
            invalidate: Option<CacheKey>,
            status: Option<CacheStatus>,
        },
        Flow { future: Flow<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn pass(
        future: F,
        shared: Arc<Shared>,
        invalidate: Option<CacheKey>,
        status: Option<CacheStatus>,
    ) -> Self {
        Self {
            kind: Kind::Pass {
                future,
                shared,
                invalidate,
                status,
            },
        }
    }

    pub(crate) fn flow(future: Flow<B, E>) -> Self {
        Self {
            kind: Kind::Flow { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<CaptureBody<B>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Flow { future } => future.as_mut().poll(cx),
            KindProj::Pass {
                future,
                shared,
                invalidate,
                status,
            } => {
                let response = ready!(future.poll(cx))?;
                if let Some(key) = invalidate.take() {
                    invalidate_after(shared, &key, &response);
                }
                Poll::Ready(Ok(pass(shared, response, status.take())))
            }
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
