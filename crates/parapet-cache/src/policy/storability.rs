//! Whether a shared cache may store a response (RFC 9111 §3, §3.5), with parapet's safety
//! defaults on top.

use http::header::{AUTHORIZATION, SET_COOKIE, VARY};
use http::{HeaderMap, Method, StatusCode};

use super::{CacheControl, Fields};

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotStored {
    /// Only `GET` responses are stored (a `HEAD` is answered from a stored `GET`, never
    /// stored as it: it has no body).
    Method,
    /// An interim, partial (`206`) or not understood status.
    Status,
    /// A server error: `stale-if-error` serves the last good answer instead of pinning an
    /// outage in the cache.
    ServerError,
    /// `401`, `403` or `429`: a refusal of this client (its credentials, its rights, its
    /// rate), not an answer about the resource that others should get.
    Refusal,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private`: for one user only.
    Private,
    /// The request carried `Authorization`, and the response does not say a shared cache
    /// may store it (`public`, `s-maxage` or `must-revalidate`, §3.5).
    Authorization,
    /// `Vary: *`: no request can ever be known to match it.
    VaryAny,
    /// `Set-Cookie`: another client would receive this one's cookie.
    SetCookie,
    /// Nothing says how long it stays fresh, and it may not be given a heuristic lifetime.
    NoFreshness,
}

/// Whether a response to `method` with these request and response headers may be stored by
/// a shared cache. `has_freshness` is whether [`freshness_lifetime`](super::freshness_lifetime)
/// found one (or a configured default applies).
///
/// The RFC allows more than this returns `Ok` for: parapet never stores `Set-Cookie`,
/// server errors, refusals of a client (401, 403, 429) or `private` responses even with
/// field names, so that no response meant for one client can reach another.
///
/// ```
/// use http::{HeaderMap, Method, StatusCode};
/// use parapet_cache::policy::{CacheControl, NotStored, storability};
///
/// let request = HeaderMap::new();
/// let mut response = HeaderMap::new();
/// response.insert("cache-control", "private, max-age=60".parse().unwrap());
/// let cc = CacheControl::from_headers(&response);
/// let verdict = storability(&Method::GET, &request, StatusCode::OK, &response, &cc, true);
/// assert_eq!(verdict, Err(NotStored::Private));
/// ```
pub fn storability(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    response_cc: &CacheControl,
    has_freshness: bool,
) -> Result<(), NotStored> {
    if method != Method::GET {
        return Err(NotStored::Method);
    }
    if status.is_server_error() {
        return Err(NotStored::ServerError);
    }
    if !status.is_success() && !status.is_redirection() && !status.is_client_error()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    if is_refusal(status) {
        return Err(NotStored::Refusal);
    }
    let request_cc = CacheControl::from_headers(request);
    if request_cc.no_store || response_cc.no_store {
        return Err(NotStored::NoStore);
    }
    if response_cc.private != Fields::Absent {
        return Err(NotStored::Private);
    }
    if request.contains_key(AUTHORIZATION)
        && !(response_cc.public || response_cc.s_maxage.is_present() || response_cc.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    if vary_any(response) {
        return Err(NotStored::VaryAny);
    }
    if response.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    if !has_freshness {
        return Err(NotStored::NoFreshness);
    }
    Ok(())
}

/// A refusal of one client (its credentials, its rights, its rate): never stored, and it
/// neither replaces what is stored nor stops others collapsing.
pub(crate) fn is_refusal(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    )
}

/// True when a `Vary` member is `*` (or a line cannot be read, which could hide one).
fn vary_any(response: &HeaderMap) -> bool {
    response
        .get_all(VARY)
        .iter()
        .any(|line| match line.to_str() {
            Ok(line) => line.split(',').any(|member| member.trim() == "*"),
            Err(_) => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(
        method: Method,
        request: &[(&str, &str)],
        status: u16,
        response: &[(&str, &str)],
    ) -> Result<(), NotStored> {
        let to_map = |pairs: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (n, v) in pairs {
                map.append(
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            map
        };
        let (request, response) = (to_map(request), to_map(response));
        let cc = CacheControl::from_headers(&response);
        let fresh = cc.max_age.is_present() || cc.s_maxage.is_present();
        storability(
            &method,
            &request,
            StatusCode::from_u16(status).unwrap(),
            &response,
            &cc,
            fresh,
        )
    }

    const FRESH: (&str, &str) = ("cache-control", "max-age=60");

    #[test]
    fn what_is_stored_and_why_not() {
        assert_eq!(verdict(Method::GET, &[], 200, &[FRESH]), Ok(()));
        assert_eq!(
            verdict(Method::HEAD, &[], 200, &[FRESH]),
            Err(NotStored::Method)
        );
        assert_eq!(
            verdict(Method::POST, &[], 200, &[FRESH]),
            Err(NotStored::Method)
        );
        assert_eq!(
            verdict(Method::GET, &[], 503, &[FRESH]),
            Err(NotStored::ServerError)
        );
        assert_eq!(
            verdict(Method::GET, &[], 206, &[FRESH]),
            Err(NotStored::Status)
        );
        for refusal in [401, 403, 429] {
            assert_eq!(
                verdict(
                    Method::GET,
                    &[],
                    refusal,
                    &[("cache-control", "public, max-age=60")]
                ),
                Err(NotStored::Refusal),
                "{refusal}"
            );
        }
        assert_eq!(verdict(Method::GET, &[], 404, &[FRESH]), Ok(()));
        assert_eq!(
            verdict(Method::GET, &[("cache-control", "no-store")], 200, &[FRESH]),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            verdict(
                Method::GET,
                &[],
                200,
                &[("cache-control", "max-age=60, private=\"x-user\"")]
            ),
            Err(NotStored::Private)
        );
        assert_eq!(
            verdict(Method::GET, &[], 200, &[FRESH, ("vary", "accept, *")]),
            Err(NotStored::VaryAny)
        );
        assert_eq!(
            verdict(Method::GET, &[], 200, &[FRESH, ("set-cookie", "a=b")]),
            Err(NotStored::SetCookie)
        );
        assert_eq!(
            verdict(Method::GET, &[], 200, &[]),
            Err(NotStored::NoFreshness)
        );
    }

    #[test]
    fn authorization_needs_the_responses_permission() {
        let auth = [("authorization", "Bearer x")];
        assert_eq!(
            verdict(Method::GET, &auth, 200, &[FRESH]),
            Err(NotStored::Authorization)
        );
        for allowed in [
            "public, max-age=60",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            assert_eq!(
                verdict(Method::GET, &auth, 200, &[("cache-control", allowed)]),
                Ok(()),
                "{allowed}"
            );
        }
    }
}
