//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use parapet_core::ResponseBody;
use pin_project_lite::pin_project;

use crate::flow::{invalidated_by, pass};
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
        Ready { response: Option<Response<ResponseBody<CaptureBody<B>>>> },
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

    pub(crate) fn ready(response: Response<ResponseBody<CaptureBody<B>>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
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
    B: Send + 'static,
    E: Send + 'static,
{
    type Output = Result<Response<ResponseBody<CaptureBody<B>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let (shared, keys, response, status) = match kind.as_mut().project() {
            KindProj::Flow { future } => return future.as_mut().poll(cx),
            KindProj::Ready { response } => {
                return match response.take() {
                    Some(response) => Poll::Ready(Ok(response)),
                    // Polled again after completion: a contract breach by the caller.
                    None => Poll::Pending,
                };
            }
            KindProj::Pass {
                future,
                shared,
                invalidate,
                status,
            } => {
                let response = ready!(future.poll(cx))?;
                let Some(key) = invalidate.take() else {
                    return Poll::Ready(Ok(pass(shared, response, status.take())));
                };
                let keys = invalidated_by(shared, key, &response);
                (Arc::clone(shared), keys, response, status.take())
            }
        };
        // The response leaves once what it invalidated is gone, so that its client's next
        // request cannot be served the old entry.
        kind.set(Kind::Flow {
            future: Box::pin(async move {
                shared.remove(&keys).await;
                Ok(pass(&shared, response, status))
            }),
        });
        match kind.project() {
            KindProj::Flow { future } => future.as_mut().poll(cx),
            KindProj::Pass { .. } | KindProj::Ready { .. } => Poll::Pending,
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
