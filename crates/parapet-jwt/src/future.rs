//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use std::sync::Arc;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Response};
use parapet_core::{Personal, ResponseBody};
use pin_project_lite::pin_project;

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The future of [`Jwt`](crate::Jwt): the inner service's response, or
    /// the guard's refusal.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] future: F, personal: Option<Personal>, realm: Option<Arc<str>> },
        Ready { response: Option<Response<Bytes>> },
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    /// The inner service's response; with the request's mark when a token was verified, to
    /// carry into the response for the layers outside, and the guard's realm, for the
    /// challenges of refusals made behind the guard.
    pub(crate) fn inner(future: F, personal: Option<Personal>, realm: Option<Arc<str>>) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                personal,
                realm,
            },
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
            KindProj::Inner {
                future,
                personal,
                realm,
            } => future.poll(cx).map(|result| {
                result.map(|mut response| {
                    if let Some(personal) = personal.take() {
                        personal.carry(&mut response);
                    }
                    if let Some(realm) = realm.take() {
                        add_realm(&mut response, &realm);
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

/// A refusal made behind the guard ([`Claims`](crate::Claims) that do not fit, a missing
/// scope) has a `Bearer` challenge without the guard's realm, which it cannot know: add it
/// (RFC 6750 §3: the realm names the protection space, the guard's).
pub(crate) fn add_realm<B>(response: &mut Response<B>, realm: &str) {
    if !matches!(response.status().as_u16(), 401 | 403) {
        return;
    }
    let Some(challenge) = response.headers().get(WWW_AUTHENTICATE) else {
        return;
    };
    let Ok(challenge) = challenge.to_str() else {
        return;
    };
    let params = match challenge.strip_prefix("Bearer") {
        Some("") => "",
        Some(rest) if rest.starts_with(' ') => rest.trim_start(),
        _ => return,
    };
    if params.contains("realm=") {
        return;
    }
    let with_realm = if params.is_empty() {
        format!("Bearer realm=\"{realm}\"")
    } else {
        format!("Bearer realm=\"{realm}\", {params}")
    };
    // The realm was checked to be quotable when the guard was built.
    if let Ok(value) = HeaderValue::from_str(&with_realm) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
}
