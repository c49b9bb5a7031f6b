//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::request::limiter::{Charged, Pending, Verdict};
use crate::response::grpc;
use crate::{HeaderStyle, RateLimiter, ResponseBody, headers};
use parapet_core::grpc::is_grpc;

pin_project! {
    /// The response of a [`RateLimit`](crate::RateLimit) service: waits for the store when
    /// it must, then for the inner service, and adds the rate-limit fields.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Waiting {
            pending: Pending,
            limiter: RateLimiter,
            call: Option<(S, Request<B>)>,
        },
        Calling {
            #[pin]
            future: S::Future,
            charged: Option<Charged>,
            style: HeaderStyle,
        },
        Refused {
            response: Option<Response<Bytes>>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn calling(future: S::Future, charged: Option<Charged>, style: HeaderStyle) -> Self {
        Self {
            state: State::Calling {
                future,
                charged,
                style,
            },
        }
    }

    pub(crate) fn refused(response: Response<Bytes>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    pub(crate) fn waiting(
        pending: Pending,
        limiter: RateLimiter,
        service: S,
        request: Request<B>,
    ) -> Self {
        Self {
            state: State::Waiting {
                pending,
                limiter,
                call: Some((service, request)),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Waiting {
                    pending,
                    limiter,
                    call,
                } => {
                    let result = ready!(Pin::new(&mut pending.call).poll(cx));
                    let style = limiter.header_style();
                    match limiter.finish(pending, result) {
                        Verdict::Admit(charged) => {
                            let Some((mut service, request)) = call.take() else {
                                return Poll::Pending;
                            };
                            let future = service.call(request);
                            state.set(State::Calling {
                                future,
                                charged,
                                style,
                            });
                        }
                        Verdict::Refuse(response) => {
                            let response = match call {
                                Some((_, request)) if is_grpc(request) => grpc::refusal(response),
                                _ => response,
                            };
                            // The inner service and the request are not needed: drop them
                            // now, not when the caller drops this future.
                            state.set(State::Refused { response: None });
                            return Poll::Ready(Ok(response.map(ResponseBody::full)));
                        }
                    }
                }
                StateProj::Calling {
                    future,
                    charged,
                    style,
                } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(charged) = charged.take() {
                        headers::insert(
                            response.headers_mut(),
                            *style,
                            &charged.set,
                            &charged.states,
                        );
                        if let Some(refund) = charged.refund {
                            refund.apply(response.status(), &charged.set);
                        }
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                // Polled after completion: stay pending rather than panic.
                StateProj::Refused { response } => {
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(response.map(ResponseBody::full))),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
