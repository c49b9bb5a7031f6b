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
/// (RFC 6750 §3: the realm names the protection space, the guard's). Only the challenges
/// such a refusal makes are rewritten (`Bearer`, or `Bearer error="…", …`, the scheme in any
/// case); every other challenge, of this or another scheme, is kept as it is.
pub(crate) fn add_realm<B>(response: &mut Response<B>, realm: &str) {
    if !matches!(response.status().as_u16(), 401 | 403) {
        return;
    }
    let challenges: Vec<HeaderValue> = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .cloned()
        .collect();
    if challenges.is_empty() {
        return;
    }
    let with_realm = |challenge: &HeaderValue| -> Option<HeaderValue> {
        let text = challenge.to_str().ok()?;
        let scheme = text.get(..6)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let rest = &text[6..];
        let value = if rest.is_empty() {
            format!("Bearer realm=\"{realm}\"")
        } else {
            let params = rest.strip_prefix(' ')?.trim_start();
            // Our own rejections' parameters start with `error="`; anything else (a realm
            // already there, a token68, another layer's parameters) is left alone.
            if !params.starts_with("error=\"") {
                return None;
            }
            format!("Bearer realm=\"{realm}\", {params}")
        };
        // The realm was checked to be quotable when the guard was built.
        HeaderValue::from_str(&value).ok()
    };
    if challenges.iter().all(|c| with_realm(c).is_none()) {
        return;
    }
    let headers = response.headers_mut();
    headers.remove(WWW_AUTHENTICATE);
    for challenge in &challenges {
        headers.append(
            WWW_AUTHENTICATE,
            with_realm(challenge).unwrap_or_else(|| challenge.clone()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges(lines: &[&str], status: u16) -> Vec<String> {
        let mut response = Response::new(());
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        for line in lines {
            response
                .headers_mut()
                .append(WWW_AUTHENTICATE, HeaderValue::from_str(line).unwrap());
        }
        add_realm(&mut response, "shop");
        response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn only_our_bearer_challenges_get_the_realm() {
        assert_eq!(challenges(&["Bearer"], 401), ["Bearer realm=\"shop\""]);
        assert_eq!(
            challenges(&["bearer error=\"invalid_token\""], 401),
            ["Bearer realm=\"shop\", error=\"invalid_token\""]
        );
        // Other schemes, a realm already there, a token68, other parameters: untouched,
        // and every line kept.
        assert_eq!(
            challenges(&["Basic realm=\"x\"", "Bearer", "DPoP algs=\"ES256\""], 401),
            [
                "Basic realm=\"x\"",
                "Bearer realm=\"shop\"",
                "DPoP algs=\"ES256\""
            ]
        );
        for kept in [
            "Bearer realm=\"api\"",
            "Bearer abc",
            "Bearer scope=\"x\", error_description=\"realm=\"",
        ] {
            assert_eq!(challenges(&[kept], 403), [kept]);
        }
        assert_eq!(challenges(&["Bearer"], 200), ["Bearer"]);
    }
}
