//! What the cache does with a `GET` or `HEAD`: look up, serve fresh, serve stale, revalidate,
//! or forward and store — RFC 9111 §4 in order.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    AGE, CONTENT_LOCATION, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LOCATION,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use parapet_core::{Personal, Problem, ResponseBody, decision_fields};
use tower_service::Service;

use crate::capture_body::Capture;
use crate::conditional::{not_modified, not_modified_headers, updated, validates};
use crate::flight::{Landing, LeaderGuard, Role, wait};
use crate::policy::{CacheControl, Delta};
use crate::purge::Purged;
use crate::shared::{CREDENTIALS, HOP_BY_HOP, Shared, TAG_FIELDS};
use crate::status::{CacheStatus, Forward};
use crate::store::Lookup;
use crate::{CacheKey, CacheOverride, CaptureBody, StoredResponse, metrics};

pub(crate) type Out<B> = Response<ResponseBody<CaptureBody<B>>>;

/// The inner service as the flow calls it: from any task, moved into background refreshes.
pub(crate) trait Origin<ReqBody, B>:
    Service<Request<ReqBody>, Response = Response<B>, Future: Send, Error: Send + 'static>
    + Send
    + 'static
{
}

impl<T, ReqBody, B> Origin<ReqBody, B> for T
where
    T: Service<Request<ReqBody>, Response = Response<B>> + Send + 'static,
    T::Future: Send,
    T::Error: Send + 'static,
{
}

/// Adds this cache's `Cache-Status` member after any from caches nearer the origin.
fn mark(headers: &mut HeaderMap, status: CacheStatus) {
    // Only a map at http's limit of names refuses it: the response goes without.
    let _ = headers.try_append(crate::CACHE_STATUS, status.to_header());
}

/// The origin's response, passed on untouched but for `Cache-Status` and the fields meant
/// for this cache only.
pub(crate) fn pass<B>(
    shared: &Shared,
    response: Response<B>,
    status: Option<CacheStatus>,
) -> Out<B> {
    let (mut parts, body) = response.into_parts();
    strip_own_fields(shared, &mut parts.headers);
    if let Some(status) = status {
        mark(&mut parts.headers, status);
    }
    Response::from_parts(parts, ResponseBody::inner(CaptureBody::pass(body)))
}

fn strip_own_fields(shared: &Shared, headers: &mut HeaderMap) -> Option<CacheControl> {
    for field in TAG_FIELDS {
        headers.remove(field);
    }
    let targeted = shared.targeted.as_ref()?;
    let parsed = crate::shared::targeted_field(headers, targeted);
    headers.remove(targeted);
    parsed
}

fn tags(headers: &HeaderMap) -> Vec<String> {
    let mut tags = Vec::new();
    for field in TAG_FIELDS {
        for line in headers.get_all(field) {
            let Ok(line) = line.to_str() else { continue };
            for tag in line.split([' ', ',']).filter(|t| !t.is_empty()).take(64) {
                if tag.len() <= 256 && !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_owned());
                }
            }
        }
    }
    tags
}

/// A response built from a stored one: `304` when the client's validators match, else
/// the stored response with its current `Age`.
fn from_store<B>(
    stored: &StoredResponse,
    request: &HeaderMap,
    method: &Method,
    now: SystemTime,
    status: CacheStatus,
) -> Out<B> {
    let age = stored.age(now).as_secs();
    let mut buf = itoa::Buffer::new();
    let age = HeaderValue::from_str(buf.format(age)).unwrap_or(HeaderValue::from_static("0"));
    // Preconditions are evaluated only for a 2xx (RFC 9110 §13.2.1): a stored 404 or 301
    // is sent whole, whatever the client's validators.
    if stored.status.is_success() && not_modified(request, &stored.headers) {
        let mut headers = not_modified_headers(&stored.headers);
        headers.insert(AGE, age);
        mark(&mut headers, status);
        let mut response = Response::new(ResponseBody::default());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = headers;
        return response;
    }
    // Built with room for the fields added here (Age, Cache-Status, a HEAD's length): a
    // clone of the stored map would be full, and grow at the first of them. Capacity counts
    // names, not values; a map at http's limit keeps the stored fields that fit.
    let mut headers =
        HeaderMap::try_with_capacity(stored.headers.keys_len() + 3).unwrap_or_default();
    for (name, value) in &stored.headers {
        if headers.try_append(name.clone(), value.clone()).is_err() {
            break;
        }
    }
    let _ = headers.try_insert(AGE, age);
    mark(&mut headers, status);
    let body = if method == Method::HEAD {
        // The GET's length, which an empty HEAD body would otherwise replace.
        if !headers.contains_key(http::header::CONTENT_LENGTH) {
            let mut buf = itoa::Buffer::new();
            if let Ok(length) = HeaderValue::from_str(buf.format(stored.body.len())) {
                let _ = headers.try_insert(http::header::CONTENT_LENGTH, length);
            }
        }
        ResponseBody::default()
    } else {
        ResponseBody::full(stored.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = stored.status;
    *response.headers_mut() = headers;
    response
}

fn ttl(stored: &StoredResponse, lifetime: Duration, now: SystemTime) -> i64 {
    let age = i64::try_from(stored.age(now).as_secs()).unwrap_or(i64::MAX);
    i64::try_from(lifetime.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_sub(age)
}

fn gateway_timeout<B>(status: CacheStatus) -> Out<B> {
    let mut response = Problem::new(StatusCode::GATEWAY_TIMEOUT, "not in cache")
        .string(
            "detail",
            "the request said only-if-cached and no stored response can be used",
        )
        .into_response()
        .map(ResponseBody::full);
    mark(response.headers_mut(), status);
    response
}

/// A fresh hit answered without going async: for stores that answer at once (memory), a
/// plain request (no bypass, no `Cache-Control` of its own) for a fresh, reusable response.
/// `None`: take the full path.
pub(crate) fn fast_hit<ReqBody, B>(shared: &Shared, request: &Request<ReqBody>) -> Option<Out<B>> {
    // Checked first, so a remote store pays nothing here. XFetch needs the inner service
    // for its refreshes: the general path.
    if !shared.store.answers_at_once() || shared.early_refresh > 0.0 {
        return None;
    }
    let headers = request.headers();
    if headers.contains_key(http::header::CACHE_CONTROL)
        || headers.contains_key(http::header::RANGE)
        || shared.bypass_reason(request).is_some()
    {
        return None;
    }
    let key = shared.key_of(request)?;
    let now = shared.now();
    // A store in this process, or a tier of one (a remote store says `None` at once).
    let stored = shared.store.hit_at_once(&key, headers, now)?;
    if !usable(shared, &stored, now) {
        return None;
    }
    Some(fresh_hit(
        shared,
        &stored,
        headers,
        request.method(),
        now,
        false,
    ))
}

/// `400 Bad Request` for a request whose `Host` cannot be trusted (see
/// `Shared::bad_host`), answered by the cache itself whatever the method.
pub(crate) fn bad_host<B>(shared: &Shared, why: &'static str) -> Out<B> {
    shared.counter(|c| &c.bypassed);
    metrics::request(metrics::Outcome::Bypass);
    let mut problem = Problem::new(StatusCode::BAD_REQUEST, "bad Host")
        .string("detail", why)
        .into_response()
        .map(ResponseBody::full);
    mark(
        problem.headers_mut(),
        CacheStatus::forward(Forward::Bypass).detail("bad-host"),
    );
    problem
}

/// Serves a `GET` or `HEAD`.
pub(crate) async fn serve<S, ReqBody, B>(
    shared: Arc<Shared>,
    mut inner: S,
    mut request: Request<ReqBody>,
) -> Result<Out<B>, S::Error>
where
    S: Origin<ReqBody, B>,
    ReqBody: Send + 'static,
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    let bypass = shared
        .bypass_reason(&request)
        .map(|d| CacheStatus::forward(Forward::Bypass).detail(d));
    let key = shared.key_of(&request);
    let (Some(key), None) = (key.clone(), bypass) else {
        shared.counter(|c| &c.bypassed);
        metrics::request(metrics::Outcome::Bypass);
        let status = bypass.unwrap_or(CacheStatus::forward(Forward::Bypass).detail("key"));
        let response = inner.call(request).await?;
        return Ok(pass(&shared, response, Some(status)));
    };
    let now = shared.now();
    let request_cc = CacheControl::from_headers(request.headers());
    if request.method() == Method::HEAD {
        // Ranges are for GET (RFC 9110 §14.2): a HEAD's are ignored, and must not reach a
        // refresh made from it as a GET.
        request.headers_mut().remove(http::header::RANGE);
        request.headers_mut().remove(http::header::IF_RANGE);
    }
    if request.method() == Method::GET && request.headers().contains_key(http::header::RANGE) {
        return ranged(shared, inner, request, &key, &request_cc, now).await;
    }
    let (fwd, vary) = match shared.lookup(&key, request.headers(), now).await {
        Lookup::Hit(stored) => match shared.purges.check(&stored) {
            Some(Purged::Hard) => (Forward::UriMiss, Vec::new()),
            soft => {
                // A soft purge makes the stored response stale: revalidated before reuse.
                let fresh_for = if soft.is_some() {
                    Duration::ZERO
                } else {
                    stored.lifetime
                };
                return reuse(shared, inner, request, stored, fresh_for, &request_cc, now).await;
            }
        },
        Lookup::VaryMiss(fields) => (Forward::VaryMiss, fields),
        Lookup::Miss => (Forward::UriMiss, Vec::new()),
    };
    miss(shared, inner, request, key, &request_cc, fwd, vary).await
}

/// A `GET` with `Range`: answered from a fresh stored `200` (RFC 9110 §14), else sent to
/// the origin as it is, its answer not stored (nothing partial is stored).
async fn ranged<S, ReqBody, B>(
    shared: Arc<Shared>,
    mut inner: S,
    request: Request<ReqBody>,
    key: &crate::key::CacheKey,
    request_cc: &CacheControl,
    now: SystemTime,
) -> Result<Out<B>, S::Error>
where
    S: Origin<ReqBody, B>,
    ReqBody: Send + 'static,
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    if let Lookup::Hit(stored) = shared.lookup(key, request.headers(), now).await
        && shared.purges.check(&stored).is_none()
        && stored.status == StatusCode::OK
        && !stored.rules.no_cache
    {
        let age = stored.age(now);
        let remaining = stored.lifetime.saturating_sub(age);
        if age < stored.lifetime && !requested(&shared, request_cc, age, remaining) {
            let response = fresh_hit(
                &shared,
                &stored,
                request.headers(),
                &Method::GET,
                now,
                false,
            );
            return Ok(with_range(response, &stored, request.headers()));
        }
    }
    if request_cc.only_if_cached {
        return Ok(gateway_timeout(
            CacheStatus::forward(Forward::UriMiss).detail("only-if-cached"),
        ));
    }
    shared.counter(|c| &c.bypassed);
    metrics::request(metrics::Outcome::Bypass);
    let response = inner.call(request).await?;
    Ok(pass(
        &shared,
        response,
        Some(CacheStatus::forward(Forward::Bypass).detail("range")),
    ))
}

/// Fields that describe the whole stored body (a digest of it, a range of a larger one),
/// which a part of it does not have.
const WHOLE_BODY_FIELDS: [http::HeaderName; 4] = [
    http::header::CONTENT_RANGE,
    http::header::HeaderName::from_static("content-digest"),
    http::header::HeaderName::from_static("digest"),
    http::header::HeaderName::from_static("content-md5"),
];

/// The ranges a request asks of a `200` made from `stored` (a `304` or another status is
/// left as it is).
fn with_range<B>(mut response: Out<B>, stored: &StoredResponse, request: &HeaderMap) -> Out<B> {
    if response.status() != StatusCode::OK {
        return response;
    }
    let len = stored.body.len() as u64;
    match crate::ranges::ranged(request, &stored.headers, len) {
        crate::ranges::Ranged::Whole => response,
        crate::ranges::Ranged::Parts(parts) => {
            let (status, headers, body) = crate::ranges::answer(
                &parts,
                &stored.body,
                stored.headers.get(http::header::CONTENT_TYPE),
            );
            *response.status_mut() = status;
            // Fields about the whole body do not fit a part of it.
            for name in &WHOLE_BODY_FIELDS {
                response.headers_mut().remove(name);
            }
            for (name, value) in &headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
            *response.body_mut() = ResponseBody::full(body);
            response
        }
        crate::ranges::Ranged::Unsatisfiable => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let headers = response.headers_mut();
            for name in WHOLE_BODY_FIELDS.iter().chain(&[
                http::header::CONTENT_TYPE,
                http::header::CONTENT_ENCODING,
                http::header::EXPIRES,
            ]) {
                headers.remove(name);
            }
            // An answer to this request's Range alone: no cache downstream may keep it for
            // requests without one.
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            headers.insert(
                http::header::CONTENT_RANGE,
                crate::ranges::unsatisfiable(len),
            );
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            *response.body_mut() = ResponseBody::default();
            response
        }
    }
}

/// Whether the request's own directives (§5.2.1) ask the origin, for a stored response of
/// this `age` with `remaining` freshness: `no-cache`, a `max-age` it is past, `min-fresh`
/// it does not have.
fn requested(
    shared: &Shared,
    request_cc: &CacheControl,
    age: Duration,
    remaining: Duration,
) -> bool {
    shared.obey_request_directives
        && (request_cc.no_cache.is_present()
            || matches!(request_cc.max_age, Delta::Seconds(max) if age > max)
            || matches!(request_cc.max_age, Delta::Bare | Delta::Invalid)
            || matches!(request_cc.min_fresh, Delta::Seconds(min) if remaining < min))
}

/// A stored response exists: serve it fresh or stale, or revalidate it (§4.2, §4.3).
async fn reuse<S, ReqBody, B>(
    shared: Arc<Shared>,
    mut inner: S,
    request: Request<ReqBody>,
    stored: Arc<StoredResponse>,
    fresh_for: Duration,
    request_cc: &CacheControl,
    now: SystemTime,
) -> Result<Out<B>, S::Error>
where
    S: Origin<ReqBody, B>,
    ReqBody: Send + 'static,
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    let age = stored.age(now);
    let ttl = ttl(&stored, fresh_for, now);
    let fresh = age < fresh_for;
    let remaining = fresh_for.saturating_sub(age);
    let requested = requested(&shared, request_cc, age, remaining);
    let method = request.method().clone();
    if fresh && !requested && !stored.rules.no_cache {
        let response = fresh_hit(&shared, &stored, request.headers(), &method, now, false);
        if shared.refreshes_early(&stored, age) {
            crate::refresh::spawn(&shared, inner, request, &stored);
        }
        return Ok(response);
    }
    let stale_by = age.saturating_sub(fresh_for);
    let may_be_stale = !stored.rules.must_revalidate && !stored.rules.no_cache && !requested;
    if !fresh && may_be_stale {
        let max_stale = match request_cc.max_stale {
            Delta::Bare => true,
            Delta::Seconds(max) => stale_by <= max,
            _ => false,
        };
        if max_stale {
            shared.counter(|c| &c.stale_hits);
            metrics::request(metrics::Outcome::Stale);
            return Ok(from_store(
                &stored,
                request.headers(),
                &method,
                now,
                CacheStatus::hit(ttl).detail("max-stale"),
            ));
        }
        if stale_by <= stored.rules.while_revalidate {
            shared.counter(|c| &c.stale_hits);
            metrics::request(metrics::Outcome::Stale);
            let response = from_store(
                &stored,
                request.headers(),
                &method,
                now,
                CacheStatus::hit(ttl).detail("stale-while-revalidate"),
            );
            crate::refresh::spawn(&shared, inner, request, &stored);
            return Ok(response);
        }
    }
    if request_cc.only_if_cached {
        return Ok(gateway_timeout(
            CacheStatus::forward(Forward::Stale).detail("only-if-cached"),
        ));
    }
    let fwd = if fresh && requested {
        Forward::Request
    } else {
        Forward::Stale
    };
    if request_cc.no_store {
        // §5.2.1.5: nothing of this exchange is stored, and a request's directive never
        // removes what is: the client's own request goes to the origin as sent, leads no
        // flight, and its answer replaces nothing.
        let response = inner.call(request).await?;
        let code = response.status().as_u16();
        let status = CacheStatus {
            fwd_status: Some(code),
            ..CacheStatus::forward(fwd).detail("no-store")
        };
        return Ok(pass(&shared, response, Some(status)));
    }
    let may_serve_on_error = !fresh && may_be_stale && stale_by <= stored.rules.if_error;
    // Concurrent revalidations of one variant collapse like misses, unless the entry says
    // `no-cache`: what the leader refreshes could serve no waiter without another
    // validation, so waiting for it would only delay them.
    let may_lead = method == Method::GET
        && !stored.rules.no_cache
        && !request.headers().contains_key(http::header::AUTHORIZATION);
    let status = CacheStatus::forward(fwd);
    let guard = match board(
        &shared,
        &stored.key,
        request.headers(),
        &method,
        status,
        stored.vary.clone(),
        may_lead,
        false,
    )
    .await
    {
        Boarding::Served(response) => return Ok(*response),
        Boarding::Fetch(guard, _) => guard,
    };
    revalidate(
        shared,
        inner,
        request,
        stored,
        fwd,
        may_serve_on_error,
        now,
        guard,
    )
    .await
}

/// Asks the origin whether the stored response is still good (§4.3.1), serving it stale on
/// an error within `stale-if-error` (RFC 5861 §4).
#[allow(clippy::too_many_arguments)]
async fn revalidate<S, ReqBody, B>(
    shared: Arc<Shared>,
    mut inner: S,
    mut request: Request<ReqBody>,
    stored: Arc<StoredResponse>,
    fwd: Forward,
    may_serve_on_error: bool,
    now: SystemTime,
    mut guard: Option<LeaderGuard>,
) -> Result<Out<B>, S::Error>
where
    S: Origin<ReqBody, B>,
    ReqBody: Send + 'static,
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    let client = request.headers().clone();
    let method = request.method().clone();
    set_validators(request.headers_mut(), &stored);
    let requested_at = shared.now();
    let personal = Personal::of(request.extensions_mut());
    let call = inner.call(request);
    let outcome = match (may_serve_on_error, shared.origin_timeout) {
        (true, Some(limit)) => tokio::time::timeout(limit, call).await.ok(),
        _ => Some(call.await),
    };
    if let Some(guard) = guard.as_mut() {
        guard.answered();
    }
    let stale = |detail| {
        shared.counter(|c| &c.stale_hits);
        metrics::request(metrics::Outcome::Stale);
        let ttl = ttl(&stored, stored.lifetime, now);
        let status = CacheStatus {
            fwd: Some(Forward::Stale),
            ..CacheStatus::hit(ttl)
        }
        .detail(detail);
        from_store(&stored, &client, &method, shared.now(), status)
    };
    let response = match outcome {
        None => return Ok(stale("origin-timeout")),
        Some(Err(_)) if may_serve_on_error => return Ok(stale("stale-if-error")),
        Some(Err(error)) => return Err(error),
        Some(Ok(mut response)) => {
            personal.carry(&mut response);
            response
        }
    };
    let received = shared.now();
    // An answer that depended on this client's session or token says nothing of what
    // others get: it neither refreshes nor replaces the stored response.
    let personal = personal.is_marked();
    if response.status() == StatusCode::NOT_MODIFIED && personal {
        let status = CacheStatus {
            fwd_status: Some(304),
            ..CacheStatus::forward(fwd)
        }
        .detail("personal");
        // What the layers that depend on the client set (a rotated session's cookie) still
        // reaches this client.
        let mut served = from_store(&stored, &client, &method, received, status);
        let cookies = response.headers().get_all(http::header::SET_COOKIE);
        if cookies.iter().next().is_some() {
            for cookie in cookies {
                served
                    .headers_mut()
                    .append(http::header::SET_COOKIE, cookie.clone());
            }
            served.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("private"),
            );
        }
        return Ok(served);
    }
    if response.status() == StatusCode::NOT_MODIFIED {
        if !validates(response.headers(), &stored.headers) {
            // The origin confirmed some other response than the one asked about: the
            // stored one cannot be used (removed when it was stale by itself: a client's
            // own revalidation removes nothing), and there is no body to forward.
            if fwd == Forward::Stale {
                shared.remove(std::slice::from_ref(&stored.key)).await;
            }
            let mut problem = Problem::new(StatusCode::BAD_GATEWAY, "invalid revalidation")
                .string("detail", "the origin answered a conditional request with a 304 for another representation")
                .into_response()
                .map(ResponseBody::full);
            mark(
                problem.headers_mut(),
                CacheStatus {
                    fwd_status: Some(304),
                    ..CacheStatus::forward(fwd)
                },
            );
            return Ok(problem);
        }
        let refreshed = refreshed(
            &shared,
            &stored,
            response.headers(),
            requested_at,
            received,
            &client,
        )
        .await;
        let status = CacheStatus {
            fwd_status: Some(304),
            stored: refreshed.is_some(),
            ..CacheStatus::forward(fwd)
        };
        shared.counter(|c| &c.revalidated);
        metrics::request(metrics::Outcome::Revalidated);
        if let (Some(guard), Some(refreshed)) = (guard, &refreshed) {
            guard.stored(Arc::clone(refreshed));
        }
        let serve = refreshed.unwrap_or(stored);
        return Ok(from_store(&serve, &client, &method, received, status));
    }
    if response.status().is_server_error() && may_serve_on_error {
        return Ok(stale("stale-if-error"));
    }
    if method == Method::HEAD
        && response.status() == StatusCode::OK
        && !personal
        && fwd == Forward::Stale
        && !client.contains_key(http::header::AUTHORIZATION)
        && !client.contains_key(http::header::COOKIE)
    {
        // §4.3.5: a 200 to a HEAD tells of the stored GET, when that was stale by itself
        // (a revalidation the client asked for changes nothing). A validator both carry
        // and agree on, on a stored 200, refreshes it as a 304 would; a validator or
        // length that differs invalidates it; with nothing to compare it is left as it
        // is. The HEAD's own answer goes to the client as it is.
        match same_representation(response.headers(), &stored) {
            Some(true) if stored.status == StatusCode::OK => {
                refreshed(
                    &shared,
                    &stored,
                    response.headers(),
                    requested_at,
                    received,
                    &client,
                )
                .await;
            }
            Some(false) => shared.remove(std::slice::from_ref(&stored.key)).await,
            _ => {}
        }
    }
    shared.counter(|c| &c.misses);
    metrics::request(metrics::Outcome::Miss);
    let status_code = response.status();
    let status = CacheStatus::forward(fwd);
    let (response, stored_as) = store_or_pass(
        &shared,
        stored.key.clone(),
        &method,
        &client,
        requested_at,
        received,
        response,
        guard,
        status,
    );
    // §4.3.3: the origin's full answer replaces the stored one; when it may not be stored,
    // the old one must not be served any more either. Only when the stored one was stale
    // by itself and the answer is a good one, though: a revalidation the request asked for
    // (`no-cache`), or an error it provoked (a 431 for a huge field), removes nothing, so
    // that no client can empty an entry.
    let good = status_code.is_success() || status_code.is_redirection();
    let refused_by_response = matches!(stored_as, Stored::Refused { by_response: true });
    if refused_by_response && method == Method::GET && !personal && good && fwd == Forward::Stale {
        shared.remove(std::slice::from_ref(&stored.key)).await;
    }
    Ok(response)
}

/// Whether a `HEAD`'s answer describes the stored response (§4.3.5): `Some(false)` when a
/// validator or the length differs, `Some(true)` when none differs and a validator (`ETag`,
/// `Last-Modified`) both carry agrees, `None` when there is nothing to compare.
fn same_representation(head: &HeaderMap, stored: &StoredResponse) -> Option<bool> {
    use http::header::{CONTENT_LENGTH, ETAG, LAST_MODIFIED};
    if let Some(length) = head.get(CONTENT_LENGTH)
        && length.to_str().ok().and_then(|l| l.parse::<usize>().ok()) != Some(stored.body.len())
    {
        return Some(false);
    }
    let mut agreed = false;
    for name in [ETAG, LAST_MODIFIED] {
        if let (Some(a), Some(b)) = (head.get(&name), stored.headers.get(&name)) {
            if a != b {
                return Some(false);
            }
            agreed = true;
        }
    }
    agreed.then_some(true)
}

/// Puts the stored response's validators on a request to the origin, in place of the
/// client's own (§4.3.1).
pub(crate) fn set_validators(headers: &mut HeaderMap, stored: &StoredResponse) {
    headers.remove(IF_NONE_MATCH);
    headers.remove(IF_MODIFIED_SINCE);
    if let Some(etag) = stored.etag() {
        headers.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = stored.last_modified() {
        headers.insert(IF_MODIFIED_SINCE, modified.clone());
    }
}

/// The stored response updated by a `304` (§4.3.4) and stored again, if it may be.
pub(crate) async fn refreshed(
    shared: &Arc<Shared>,
    stored: &StoredResponse,
    not_modified: &HeaderMap,
    requested: SystemTime,
    received: SystemTime,
    request: &HeaderMap,
) -> Option<Arc<StoredResponse>> {
    let mut never: Vec<http::HeaderName> = HOP_BY_HOP.to_vec();
    never.push(http::header::SET_COOKIE);
    never.extend(decision_fields::ALL);
    let mut headers = updated(&stored.headers, not_modified, &never);
    let targeted = strip_own_fields(shared, &mut headers);
    // A 304 that validates confirms the shared representation: the credentials of the
    // client that asked say nothing of whether it may stay stored.
    let mut shared_request = request.clone();
    shared_request.remove(http::header::COOKIE);
    shared_request.remove(http::header::AUTHORIZATION);
    let plan = shared
        .plan(
            &Method::GET,
            &shared_request,
            stored.status,
            &headers,
            targeted,
            received,
            None,
        )
        .ok()?;
    for name in &plan.strip {
        headers.remove(name);
    }
    let response = Arc::new(StoredResponse {
        initial_age: StoredResponse::initial_age(&headers, requested, received),
        headers,
        requested,
        received,
        lifetime: plan.lifetime,
        rules: plan.rules,
        ..stored.clone()
    });
    shared.put(Arc::clone(&response)).await;
    Some(response)
}

/// What a request that must go to the origin does about concurrent ones.
enum Boarding<B> {
    /// Answered from what another request fetched.
    Served(Box<Out<B>>),
    /// Fetch, leading the flight if there is a guard.
    Fetch(Option<LeaderGuard>, CacheStatus),
}

/// The variant hash of `key` for `request`'s values of `vary`.
fn variant_hash(
    shared: &Shared,
    key: &CacheKey,
    headers: &HeaderMap,
    vary: &[http::HeaderName],
) -> u64 {
    let mut variant = key.as_bytes().to_vec();
    variant.extend_from_slice(&variant_values(headers, vary));
    shared.flights.hash(&variant)
}

/// The request's values of `vary`, length-prefixed: what selects one variant.
fn variant_values(headers: &HeaderMap, vary: &[http::HeaderName]) -> Vec<u8> {
    crate::vary::encode(&crate::vary::values(headers, vary))
}

/// Collapses this request onto the flight for its variant (§4): lead it, or wait for its
/// landing and serve what it stored. A landing for another variant (a cold resource whose
/// `Vary` was not known) sends the request to that variant's flight; at most three tries.
/// `recheck`: a new leader looks the store up again first (for misses; a revalidation must
/// reach the origin).
#[allow(clippy::too_many_arguments)]
async fn board<B>(
    shared: &Arc<Shared>,
    key: &CacheKey,
    headers: &HeaderMap,
    method: &Method,
    status: CacheStatus,
    mut vary: Vec<http::HeaderName>,
    may_lead: bool,
    recheck: bool,
) -> Boarding<B> {
    if !may_lead {
        return Boarding::Fetch(None, status);
    }
    for _ in 0..3 {
        let h = variant_hash(shared, key, headers, &vary);
        match shared.flights.board(h, shared.micros()) {
            Role::Alone => return Boarding::Fetch(None, status),
            Role::Leader(guard) => {
                // A flight that landed between this request's lookup and its boarding
                // stored its response first: look again, now that this request leads, so
                // that the race does not cost a second origin call.
                let now = shared.now();
                if recheck
                    && let Lookup::Hit(stored) = shared.lookup(key, headers, now).await
                    && usable(shared, &stored, now)
                {
                    guard.stored(Arc::clone(&stored));
                    return Boarding::Served(Box::new(fresh_hit(
                        shared, &stored, headers, method, now, false,
                    )));
                }
                return lease(shared, key, headers, method, &vary, guard, status).await;
            }
            Role::Waiter(landing) => match wait(landing, shared.leader_timeout).await {
                Some(Landing::Stored(stored)) => {
                    let now = shared.now();
                    // The leader's response as stored: served if this request's
                    // Vary-named fields select it, exactly as a lookup would.
                    if stored.matches(headers) && usable(shared, &stored, now) {
                        return Boarding::Served(Box::new(fresh_hit(
                            shared, &stored, headers, method, now, true,
                        )));
                    }
                    if stored.vary == vary {
                        break;
                    }
                    vary = stored.vary.clone();
                }
                // The leader went away before its response: one waiter leads now.
                Some(Landing::Abandoned) => {}
                // Not storable (and marked so), or the leader too slow: go alone.
                _ => break,
            },
        }
    }
    Boarding::Fetch(None, status.detail("collapse-failed"))
}

/// With a distributed lease configured: take it and fetch, or wait for the instance that
/// holds it and serve what it stores.
#[allow(clippy::too_many_arguments)]
async fn lease<B>(
    shared: &Arc<Shared>,
    key: &CacheKey,
    headers: &HeaderMap,
    method: &Method,
    vary: &[http::HeaderName],
    mut guard: LeaderGuard,
    status: CacheStatus,
) -> Boarding<B> {
    let Some(wait) = shared.lease_wait else {
        return Boarding::Fetch(Some(guard), status);
    };
    let token = crate::shared::random_u64();
    let variant = variant_values(headers, vary);
    if shared.take_lease(key, &variant, token).await {
        let (shared, key) = (Arc::clone(shared), key.clone());
        guard.on_land(move || {
            let call = shared.store.release(&key, &variant, token);
            if let Err(call) = call.now_or_later()
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let limit = shared.store_timeout;
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(limit, call).await;
                });
            }
        });
        return Boarding::Fetch(Some(guard), status);
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_millis(10))).await;
        let now = shared.now();
        if let Lookup::Hit(stored) = shared.lookup(key, headers, now).await
            && usable(shared, &stored, now)
        {
            guard.stored(Arc::clone(&stored));
            return Boarding::Served(Box::new(fresh_hit(
                shared, &stored, headers, method, now, true,
            )));
        }
    }
    Boarding::Fetch(Some(guard), status.detail("lease-timeout"))
}

/// A fresh hit, counted: `collapsed` when another request fetched it.
fn fresh_hit<B>(
    shared: &Shared,
    stored: &StoredResponse,
    headers: &HeaderMap,
    method: &Method,
    now: SystemTime,
    collapsed: bool,
) -> Out<B> {
    shared.counter(|c| &c.hits);
    metrics::request(metrics::Outcome::Hit);
    if collapsed {
        shared.counter(|c| &c.collapsed);
        ::metrics::counter!(metrics::COLLAPSED).increment(1);
    }
    let status = CacheStatus {
        collapsed,
        ..CacheStatus::hit(ttl(stored, stored.lifetime, now))
    };
    from_store(stored, headers, method, now, status)
}

/// Whether a stored response may be served as a fresh hit without more checks.
fn usable(shared: &Shared, stored: &StoredResponse, now: SystemTime) -> bool {
    stored.age(now) < stored.lifetime
        && !stored.rules.no_cache
        && shared.purges.check(stored).is_none()
}

/// Nothing usable is stored: forward, collapsing concurrent misses on one variant (§4).
async fn miss<S, ReqBody, B>(
    shared: Arc<Shared>,
    mut inner: S,
    mut request: Request<ReqBody>,
    key: CacheKey,
    request_cc: &CacheControl,
    fwd: Forward,
    vary: Vec<http::HeaderName>,
) -> Result<Out<B>, S::Error>
where
    S: Origin<ReqBody, B>,
    ReqBody: Send + 'static,
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    if request_cc.only_if_cached {
        return Ok(gateway_timeout(
            CacheStatus::forward(fwd).detail("only-if-cached"),
        ));
    }
    let headers = request.headers();
    // A client's own conditional request goes to the origin as sent (its 304 is not
    // storable), and so does one whose answer may not be stored because of the request
    // itself: none of them may lead a flight, or its answer would stop others collapsing.
    let may_lead = request.method() == Method::GET
        && !headers.contains_key(IF_NONE_MATCH)
        && !headers.contains_key(IF_MODIFIED_SINCE)
        && !headers.contains_key(http::header::AUTHORIZATION)
        && !request_cc.no_store;
    let (mut guard, status) = match board(
        &shared,
        &key,
        request.headers(),
        request.method(),
        CacheStatus::forward(fwd),
        vary,
        may_lead,
        true,
    )
    .await
    {
        Boarding::Served(response) => return Ok(*response),
        Boarding::Fetch(guard, status) => (guard, status),
    };
    shared.counter(|c| &c.misses);
    metrics::request(metrics::Outcome::Miss);
    let method = request.method().clone();
    let client = request.headers().clone();
    let override_ttl = request
        .extensions()
        .get::<CacheOverride>()
        .and_then(|o| o.default_ttl);
    let requested = shared.now();
    let personal = Personal::of(request.extensions_mut());
    let answer = inner.call(request).await;
    if let Some(guard) = guard.as_mut() {
        guard.answered();
    }
    let mut response = answer?;
    personal.carry(&mut response);
    let received = shared.now();
    if request_cc.no_store {
        let code = response.status().as_u16();
        let status = CacheStatus {
            fwd_status: Some(code),
            ..status.detail("no-store")
        };
        return Ok(pass(&shared, response, Some(status)));
    }
    Ok(store_or_pass_with(
        &shared,
        key,
        &method,
        &client,
        requested,
        received,
        response,
        guard,
        status,
        override_ttl,
    )
    .0)
}

/// Whether [`store_or_pass`] stores a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// On its way to the client.
    Kept,
    /// Not stored; `by_response` when for what the response says of itself (it may then
    /// replace what is stored), not for what the request carried.
    Refused { by_response: bool },
}

/// Not stored: a coding the request's variant refused.
const CODING: &str = "coding";

/// The origin's response to a cache miss: stored on its way to the client when it may be.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_or_pass<B>(
    shared: &Arc<Shared>,
    key: CacheKey,
    method: &Method,
    request: &HeaderMap,
    requested: SystemTime,
    received: SystemTime,
    response: Response<B>,
    guard: Option<crate::flight::LeaderGuard>,
    status: CacheStatus,
) -> (Out<B>, Stored)
where
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    store_or_pass_with(
        shared, key, method, request, requested, received, response, guard, status, None,
    )
}

#[allow(clippy::too_many_arguments)]
fn store_or_pass_with<B>(
    shared: &Arc<Shared>,
    key: CacheKey,
    method: &Method,
    request: &HeaderMap,
    requested: SystemTime,
    received: SystemTime,
    response: Response<B>,
    guard: Option<crate::flight::LeaderGuard>,
    mut status: CacheStatus,
    override_ttl: Option<Duration>,
) -> (Out<B>, Stored)
where
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    let (mut parts, body) = response.into_parts();
    status.fwd_status = Some(parts.status.as_u16());
    let tags = tags(&parts.headers);
    let targeted = strip_own_fields(shared, &mut parts.headers);
    let plan = shared.plan(
        method,
        request,
        parts.status,
        &parts.headers,
        targeted,
        received,
        override_ttl,
    );
    let too_big = http_body::Body::size_hint(&body)
        .exact()
        .is_some_and(|n| n > shared.max_body_bytes as u64);
    // What depended on this client's session or token is never stored, whatever it says
    // of itself and wherever the session layer or the guard stands (the mark is shared).
    let personal = parts
        .extensions
        .get::<Personal>()
        .is_some_and(Personal::is_marked);
    let plan = match plan {
        _ if personal => Err("personal"),
        Ok(_) if too_big => Err("too-big"),
        Ok(_) if !crate::vary::coding_accepted(request, &parts.headers) => Err(CODING),
        other => other,
    };
    match plan {
        Err(reason) => {
            // Refused for what the request carried (its credentials, its codings), not
            // for what the response says of itself: it removes and marks nothing.
            let by_response = !personal && reason != CREDENTIALS && reason != CODING;
            if let Some(guard) = guard {
                // A cookie of the leader's may be why the answer is personal, and a refusal
                // (401, 403, 429) is about the leader alone: then it says nothing of what
                // others would get, and sets no hit-for-miss marker.
                // Nor does an error (4xx, 5xx), which one crafted request can provoke: only a
                // good answer that says it may not be stored sets the marker.
                let marker = if !by_response
                    || !(parts.status.is_success() || parts.status.is_redirection())
                    || request.contains_key(http::header::COOKIE)
                {
                    Duration::ZERO
                } else {
                    shared.hit_for_miss
                };
                guard.not_stored(shared.micros(), marker);
            }
            mark(&mut parts.headers, status.detail(reason));
            (
                Response::from_parts(parts, ResponseBody::inner(CaptureBody::pass(body))),
                Stored::Refused { by_response },
            )
        }
        Ok(plan) => {
            let mut stored_headers = parts.headers.clone();
            // Per-request decision fields (a limiter's RateLimit…) tell of this request
            // alone: a hit must not replay them.
            for name in HOP_BY_HOP
                .iter()
                .chain(&plan.strip)
                .chain(&decision_fields::ALL)
            {
                stored_headers.remove(name);
            }
            if let Some(connection) = parts
                .headers
                .get(http::header::CONNECTION)
                .and_then(|c| c.to_str().ok())
            {
                for name in connection.split(',') {
                    stored_headers.remove(name.trim());
                }
            }
            stored_headers.remove(crate::CACHE_STATUS);
            let vary = crate::vary::fields(&parts.headers).unwrap_or_default();
            let vary_values = crate::vary::values(request, &vary);
            let initial_age = StoredResponse::initial_age(&stored_headers, requested, received);
            let template = StoredResponse {
                key,
                status: parts.status,
                headers: stored_headers,
                body: Bytes::new(),
                vary,
                vary_values,
                requested,
                received,
                lifetime: plan.lifetime,
                initial_age,
                rules: plan.rules,
                tags,
            };
            status.stored = true;
            mark(&mut parts.headers, status);
            let capture = Capture {
                shared: Arc::clone(shared),
                template,
                chunks: Vec::new(),
                len: 0,
                guard,
                pending: None,
                landing: None,
                held: None,
            };
            if Body::is_end_stream(&body) {
                capture.store_now();
                return (
                    Response::from_parts(parts, ResponseBody::inner(CaptureBody::pass(body))),
                    Stored::Kept,
                );
            }
            // A flight's leader: the cache reads the body for its waiters.
            let body = if capture.guard.is_some() {
                CaptureBody::pumped(body, capture)
            } else {
                CaptureBody::capture(body, capture)
            };
            (
                Response::from_parts(parts, ResponseBody::inner(body)),
                Stored::Kept,
            )
        }
    }
}

/// §4.4: a successful unsafe request invalidates the target URI and the same-origin URIs
/// in its `Location` and `Content-Location`. The keys to remove.
pub(crate) fn invalidated_by<B>(
    shared: &Shared,
    key: CacheKey,
    response: &Response<B>,
) -> Vec<CacheKey> {
    let status = response.status();
    if !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let mut keys = Vec::with_capacity(3);
    for field in [LOCATION, CONTENT_LOCATION] {
        let Some(target) = response.headers().get(&field).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(uri) = target.parse::<http::Uri>() else {
            continue;
        };
        let same_origin = match uri.authority() {
            None => true,
            Some(authority) => authority.as_str().eq_ignore_ascii_case(key.host()),
        };
        if same_origin && uri.path().starts_with('/') {
            let scheme = uri.scheme_str().unwrap_or(key.scheme());
            let target = match uri.query() {
                Some(query) => format!("{}?{}", uri.path(), shared.query.normalise(query)),
                None => uri.path().to_owned(),
            };
            keys.push(CacheKey::new(scheme, key.host(), &target));
        }
    }
    keys.push(key);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::ReuseRules;

    /// A stored response with `values` values of one field: one name in http's map, however
    /// many values (a damaged or hostile store entry can hold that many).
    fn stored_with(values: usize) -> StoredResponse {
        let mut headers = HeaderMap::new();
        for _ in 0..values {
            headers.append("x-many", HeaderValue::from_static("v"));
        }
        let now = SystemTime::now();
        StoredResponse {
            key: crate::CacheKey::new("https", "a.example", "/x"),
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"body"),
            vary: Vec::new(),
            vary_values: Vec::new(),
            requested: now,
            received: now,
            lifetime: Duration::from_secs(60),
            initial_age: Duration::ZERO,
            rules: ReuseRules::default(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn a_hit_keeps_every_stored_value_however_many() {
        let stored = stored_with(30_000);
        let now = SystemTime::now();
        for method in [Method::GET, Method::HEAD] {
            let response: Out<http_body_util::Empty<Bytes>> = from_store(
                &stored,
                &HeaderMap::new(),
                &method,
                now,
                CacheStatus::hit(60),
            );
            assert_eq!(response.headers().get_all("x-many").iter().count(), 30_000);
            assert!(response.headers().contains_key(AGE));
            assert!(response.headers().contains_key(crate::CACHE_STATUS));
        }
    }
}
