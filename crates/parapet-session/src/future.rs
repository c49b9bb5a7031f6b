//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderValue, Response};
use parapet_core::{Personal, ResponseBody};
use pin_project_lite::pin_project;

use crate::Session;
use crate::session::Flushed;

type Flush = Pin<Box<dyn Future<Output = (Flushed, Personal)> + Send>>;

pin_project! {
    /// The response future of [`Sessions`](crate::Sessions).
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] future: F, session: Option<Session> },
        Flushing { flush: Flush, response: Option<Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(future: F, session: Session) -> Self {
        Self {
            state: State::Inner {
                future,
                session: Some(session),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future, session } => {
                    let response = ready!(future.poll(cx))?;
                    let session = session.take().filter(Session::was_used);
                    let Some(session) = session else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    // A failed request (5xx) writes none of its pending changes; what the
                    // handler already did at once (a login) still gets its cookie.
                    let write = !response.status().is_server_error();
                    let flush: Flush = Box::pin(async move {
                        let personal = session.personal().clone();
                        (session.flush(write).await, personal)
                    });
                    this.state.set(State::Flushing {
                        flush,
                        response: Some(response),
                    });
                }
                StateProj::Flushing { flush, response } => {
                    let (flushed, personal) = ready!(flush.as_mut().poll(cx));
                    let Some(response) = response.take() else {
                        return Poll::Pending;
                    };
                    let mut response = finish(response, flushed);
                    personal.carry(&mut response);
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

fn finish<B>(response: Response<B>, flushed: Flushed) -> Response<ResponseBody<B>> {
    let mut response = match flushed.error {
        None => response.map(ResponseBody::inner),
        Some(error) => error.response().map(ResponseBody::full),
    };
    let headers = response.headers_mut();
    if let Some(cookie) = flushed.set_cookie {
        headers.append(SET_COOKIE, cookie);
        // A response that sets a session cookie is this client's alone.
        if !headers.contains_key(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
        }
    }
    if flushed.vary_cookie {
        headers.append(VARY, HeaderValue::from_static("cookie"));
    }
    response
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
