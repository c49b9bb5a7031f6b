//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use parapet_core::{Personal, ResponseBody};
use pin_project_lite::pin_project;

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The future of [`JwtService`](crate::JwtService): the inner service's response, or
    /// the guard's refusal.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] future: F, personal: Option<Personal> },
        Ready { response: Option<Response<Bytes>> },
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    /// The inner service's response; with the request's mark when a token was verified, to
    /// carry into the response for the layers outside.
    pub(crate) fn inner(future: F, personal: Option<Personal>) -> Self {
        Self {
            kind: Kind::Inner { future, personal },
        }
    }

    pub(crate) fn ready(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn boxed(
        future: impl Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static,
    ) -> Self {
        Self {
            kind: Kind::Boxed {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, personal } => future.poll(cx).map(|result| {
                result.map(|mut response| {
                    if let Some(personal) = personal.take() {
                        personal.carry(&mut response);
                    }
                    response.map(ResponseBody::inner)
                })
            }),
            KindProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response.map(ResponseBody::full))),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}
