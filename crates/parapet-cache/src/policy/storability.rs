//! Whether a shared cache may store a response (RFC 9111 §3, §3.5), with parapet's safety
//! defaults on top.

use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE, VARY};
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
    /// A client error other than `404`, `405` and `410`: most (`400`, `413`, `414`, `431`)
    /// tell of the request that provoked them, and one over-long header must not put an
    /// error page in front of everyone.
    ClientError,
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
    /// The request carried credentials (`Authorization` or `Cookie`), and the response does
    /// not say a shared cache may store it: `public` or `s-maxage`. (§3.5 also lets
    /// `must-revalidate` through for `Authorization`; parapet does not, since it says
    /// nothing of who may see the answer.) A heuristic lifetime never applies to such
    /// responses either: see [`needs_explicit_freshness`].
    Credentials,
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
    if status.is_client_error()
        && !matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::GONE
        )
    {
        return Err(NotStored::ClientError);
    }
    // §5.2.2.3: with `must-understand`, a cache stores the response only if it understands
    // the requirements of its status, and then ignores `no-store` (which is there for
    // caches that do not).
    let understood = understood(status);
    if response_cc.must_understand && !understood {
        return Err(NotStored::Status);
    }
    let request_cc = CacheControl::from_headers(request);
    if request_cc.no_store || (response_cc.no_store && !(response_cc.must_understand && understood))
    {
        return Err(NotStored::NoStore);
    }
    if response_cc.private != Fields::Absent {
        return Err(NotStored::Private);
    }
    if has_credentials(request) && !(response_cc.public || response_cc.s_maxage.is_present()) {
        return Err(NotStored::Credentials);
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

/// The statuses whose caching requirements this cache implements (RFC 9110 §15): the
/// final, complete ones it stores. `206` (partial), `226` (delta encoding) and codes it
/// does not know are not among them.
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 302 | 303 | 307 | 308 | 404 | 405 | 410
    )
}

/// The request carries credentials: `Authorization` or `Cookie`.
fn has_credentials(request: &HeaderMap) -> bool {
    request.contains_key(AUTHORIZATION) || request.contains_key(COOKIE)
}

/// Whether only an explicit lifetime (`max-age`, `s-maxage`, `Expires`, or one the
/// operator configured) may make this response storable, never a heuristic one: a response
/// to a request with credentials, which the origin may have personalised without saying
/// so, and a client error (`404`, `405`, `410`), which a heuristic would keep for hours.
pub fn needs_explicit_freshness(request: &HeaderMap, status: StatusCode) -> bool {
    has_credentials(request) || status.is_client_error()
}

/// A refusal of one client (its credentials, its rights, its rate): never stored, and it
/// neither replaces what is stored nor stops others collapsing.
fn is_refusal(status: StatusCode) -> bool {
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
    fn must_understand_sets_no_store_aside_for_an_understood_status() {
        let cc = ("cache-control", "no-store, must-understand, max-age=60");
        assert_eq!(verdict(Method::GET, &[], 200, &[cc]), Ok(()));
        assert_eq!(
            verdict(Method::GET, &[], 206, &[cc]),
            Err(NotStored::Status),
            "a status it does not store is not understood for this"
        );
        assert_eq!(
            verdict(Method::GET, &[("cache-control", "no-store")], 200, &[cc]),
            Err(NotStored::NoStore),
            "the request's no-store still holds"
        );
        // A line that cannot be read might have said `private`: must-understand does not
        // set that aside.
        assert!(
            verdict(
                Method::GET,
                &[],
                200,
                &[
                    ("cache-control", "must-understand, no-store, max-age=600"),
                    ("cache-control", "priv\u{e9}"),
                ]
            )
            .is_err()
        );
        for status in [226, 299] {
            assert_eq!(
                verdict(
                    Method::GET,
                    &[],
                    status,
                    &[("cache-control", "must-understand, max-age=60")]
                ),
                Err(NotStored::Status),
                "{status}: must-understand and a status it does not know"
            );
        }
    }

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
    fn credentials_need_the_responses_explicit_permission() {
        for credentials in [("authorization", "Bearer x"), ("cookie", "session=abc")] {
            let request = [credentials];
            for refused in ["max-age=60", "max-age=60, must-revalidate"] {
                assert_eq!(
                    verdict(Method::GET, &request, 200, &[("cache-control", refused)]),
                    Err(NotStored::Credentials),
                    "{credentials:?} {refused}"
                );
            }
            for allowed in ["public, max-age=60", "s-maxage=60"] {
                assert_eq!(
                    verdict(Method::GET, &request, 200, &[("cache-control", allowed)]),
                    Ok(()),
                    "{credentials:?} {allowed}"
                );
            }
            assert!(needs_explicit_freshness(
                &[credentials]
                    .iter()
                    .map(|(n, v)| (n.parse().unwrap(), v.parse().unwrap()))
                    .collect(),
                StatusCode::OK
            ));
        }
    }

    #[test]
    fn request_caused_client_errors_are_never_stored() {
        for status in [400, 413, 414, 431, 422, 409] {
            assert_eq!(
                verdict(Method::GET, &[], status, &[FRESH]),
                Err(NotStored::ClientError),
                "{status}"
            );
        }
        for status in [404, 405, 410] {
            assert_eq!(
                verdict(Method::GET, &[], status, &[FRESH]),
                Ok(()),
                "{status}"
            );
        }
    }
}
