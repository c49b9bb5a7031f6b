//! The configuration and state every clone of the layer shares.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderName, IF_MATCH, IF_UNMODIFIED_SINCE,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, StatusCode};
use parapet_core::{Breaker, ClientIp, Clock, FailureLog, RequestHead, StoreError};
use tokio::sync::Semaphore;

use crate::cache_stats::{Counters, bump};
use crate::flight::Flights;
use crate::policy::{
    CacheControl, Fields, Heuristic, NotStored, freshness_lifetime, needs_explicit_freshness,
    storability,
};
use crate::purge::Purges;
use crate::store::{CacheStore, Lookup};
use crate::stored::ReuseRules;
use crate::{CacheOverride, KeyPart, QueryKey, SetCookie, StoredResponse, metrics};

/// Fields a cache never stores or forwards from a stored response (RFC 9110 §7.6.1,
/// RFC 9111 §3.1).
pub(crate) const HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

/// Response fields that carry tags for purges; parsed, then never forwarded.
pub(crate) const TAG_FIELDS: [&str; 2] = ["surrogate-key", "cache-tag"];

/// `CDN-Cache-Control` (RFC 9213 §2).
pub(crate) const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

pub(crate) struct Shared {
    pub store: Arc<dyn CacheStore>,
    pub query: QueryKey,
    pub key_parts: Vec<KeyPart>,
    /// The trusted proxies whose forwarding fields are keyed (see `forwarded_key`).
    pub forwarded_by: Option<ClientIp>,
    pub max_body_bytes: usize,
    /// The bound on bytes copied for responses being stored, and the count now.
    pub max_in_flight_bytes: usize,
    pub in_flight: std::sync::atomic::AtomicUsize,
    pub max_variants: usize,
    pub default_ttl: Option<Duration>,
    pub heuristic: Option<Heuristic>,
    pub grace: Duration,
    pub keep: Duration,
    pub set_cookie: SetCookie,
    pub targeted: Option<HeaderName>,
    pub cdn_cache_control: bool,
    pub unkeyed: Vec<HeaderName>,
    pub obey_request_directives: bool,
    /// Percent by which stored lifetimes are shortened at random (0: none).
    pub ttl_jitter: u32,
    /// XFetch's β (0: off).
    pub early_refresh: f64,
    /// How long a request waits for another instance holding the fetch lease (`None`: no
    /// lease).
    pub lease_wait: Option<Duration>,
    pub leader_timeout: Duration,
    pub hit_for_miss: Duration,
    pub origin_timeout: Option<Duration>,
    pub refresh_permits: Arc<Semaphore>,
    pub refreshing: Mutex<HashSet<u64>>,
    pub store_timeout: Duration,
    pub breaker: Breaker,
    pub failures: FailureLog,
    pub flights: Arc<Flights>,
    pub purges: Arc<Purges>,
    pub counters: Counters,
    pub clock: Arc<dyn Clock>,
    /// Wall time when `clock` read zero.
    pub epoch: SystemTime,
}

/// What the cache will do with a response, decided from its head alone.
pub(crate) struct Plan {
    pub lifetime: Duration,
    pub rules: ReuseRules,
    /// Fields to leave out of the stored copy (`no-cache="…"`, `Set-Cookie` under
    /// [`SetCookie::Strip`]).
    pub strip: Vec<HeaderName>,
}

impl Shared {
    /// Counts `n` more bytes in flight if they fit under the bound.
    pub(crate) fn reserve(&self, n: usize) -> bool {
        let before = self.in_flight.fetch_add(n, Ordering::Relaxed);
        if before + n > self.max_in_flight_bytes {
            self.in_flight.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Counts `n` more bytes in flight, read already.
    pub(crate) fn hold(&self, n: usize) {
        self.in_flight.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn release(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::Relaxed);
    }

    /// No room left for bytes in flight.
    pub(crate) fn in_flight_full(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) >= self.max_in_flight_bytes
    }

    pub(crate) fn micros(&self) -> i64 {
        i64::try_from(self.clock.now_micros()).unwrap_or(i64::MAX)
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.epoch + Duration::from_micros(self.clock.now_micros())
    }

    /// Why this request must not use the cache at all, if it must not.
    pub(crate) fn bypass_reason<B>(&self, request: &http::Request<B>) -> Option<&'static str> {
        let headers = request.headers();
        if let Some(o) = request.extensions().get::<CacheOverride>()
            && o.bypass
        {
            return Some("override");
        }
        // From a trusted proxy, the forwarding fields are in the key (worked out once, and
        // only for a request that carries one).
        let mut from_trusted_proxy = None;
        // One pass over the request's fields (a handful) rather than a lookup per name.
        for name in headers.keys() {
            // `X_Forwarded_Host` is `X-Forwarded-Host` to CGI-style frameworks (both become
            // `HTTP_X_FORWARDED_HOST`), and an underscore spelling of a keyed or `Vary`'d
            // field would let a client key on one value and be answered on another. Such
            // names are rare outside attacks (nginx drops them by default): bypass.
            if name.as_str().contains('_') {
                return Some("underscore-field");
            }
            // A `Connection` option makes a proxy drop the field it names after the key
            // was taken (`Connection: host`, or a `Vary`'d field): the origin would answer
            // another request than the one keyed. Only the usual options are kept.
            if *name == CONNECTION && unusual_connection_option(headers) {
                return Some("connection-option");
            }
            // A protocol switch (a WebSocket handshake) is the origin's to answer.
            if *name == UPGRADE {
                return Some("upgrade");
            }
            // A body on a GET or HEAD (`callback=…` read by some frameworks) is not keyed.
            if *name == TRANSFER_ENCODING
                || (*name == CONTENT_LENGTH
                    && headers
                        .get(CONTENT_LENGTH)
                        .is_some_and(|v| v.as_bytes() != b"0"))
            {
                return Some("request-body");
            }
            // Preconditions other than the two validators a cache answers itself go to the
            // origin as sent; their answers are not stored. (`Range` and `If-Range` are
            // answered from a stored response, see `ranges`.)
            if *name == IF_MATCH || *name == IF_UNMODIFIED_SINCE {
                return Some("precondition");
            }
            if self.unkeyed.contains(name) {
                let keyed = crate::forwarded_key::FORWARDING.contains(name)
                    && *from_trusted_proxy.get_or_insert_with(|| {
                        self.forwarded_by
                            .as_ref()
                            .is_some_and(|c| c.from_trusted_proxy(&RequestHead::of(request)))
                    });
                if !keyed {
                    return Some("unkeyed-header");
                }
            }
        }
        None
    }

    /// RFC 9112 §3.2.2: with an absolute-form target the target's authority is the host.
    /// An HTTP/1 request with one and no `Host` gets `Host` from it, before the key is
    /// taken, so that the origin is asked for the host that was keyed.
    pub(crate) fn fill_host<B>(request: &mut http::Request<B>) {
        if request.version() <= http::Version::HTTP_11
            && !request.headers().contains_key(HOST)
            && let Some(host) = request.uri().host()
        {
            // The host and port only: never the userinfo (RFC 9110 §4.2.4).
            let host = match request.uri().port_u16() {
                Some(port) => http::HeaderValue::from_str(&format!("{host}:{port}")),
                None => http::HeaderValue::from_str(host),
            };
            if let Ok(host) = host {
                request.headers_mut().insert(HOST, host);
            }
        }
    }

    /// Why this request must be answered `400 Bad Request`, if it must: two `Host` fields
    /// (RFC 9112 §3.2), or a target whose authority names another host than `Host` — the
    /// key would take one host and the origin might answer for the other.
    pub(crate) fn bad_host<B>(request: &http::Request<B>) -> Option<&'static str> {
        let headers = request.headers();
        let mut hosts = headers.get_all(HOST).iter();
        let host = hosts.next();
        if hosts.next().is_some() {
            return Some("two Host fields");
        }
        if host.is_some_and(|h| h.to_str().is_err()) {
            // Keyed as no host at all, while the origin would read its bytes.
            return Some("a Host that is not visible ASCII");
        }
        let (Some(authority), Some(host)) = (request.uri().authority(), host) else {
            return None;
        };
        (!host
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes()))
        .then_some("the target's authority and Host differ")
    }

    pub(crate) fn key_of<B>(&self, request: &http::Request<B>) -> Option<crate::CacheKey> {
        crate::CacheKey::of(&RequestHead::of(request), &self.query, &self.key_parts)
    }

    /// One store call through the breaker and within the store deadline: its value, or
    /// `None` when the breaker is open or the call failed (counted and logged).
    async fn guarded<T>(
        &self,
        op: &'static str,
        call: impl FnOnce() -> parapet_core::StoreCall<T>,
    ) -> Option<T> {
        let micros = self.micros();
        if !self.breaker.permit(micros).may_call() {
            self.store_failed(op, "circuit_open", &"circuit open after repeated failures");
            return None;
        }
        match call().await_within(self.store_timeout).await {
            Ok(value) => {
                self.breaker.success();
                Some(value)
            }
            Err(error) => {
                self.settle_failure(&error, micros);
                self.store_failed(op, error.kind(), &error);
                None
            }
        }
    }

    /// The store's answer within its deadline; a failure is a miss, counted and logged.
    pub(crate) async fn lookup(
        &self,
        key: &crate::CacheKey,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Lookup {
        self.guarded("lookup", || self.store.lookup(key, request, now))
            .await
            .unwrap_or(Lookup::Miss)
    }

    /// The store call that keeps `response`, or `None` while the breaker is open; its
    /// result goes to [`settle_put`](Self::settle_put).
    pub(crate) fn put_call(
        &self,
        response: Arc<StoredResponse>,
    ) -> Option<parapet_core::StoreCall<()>> {
        if !self.breaker.permit(self.micros()).may_call() {
            self.store_failed(
                "put",
                "circuit_open",
                &"circuit open after repeated failures",
            );
            return None;
        }
        Some(
            self.store
                .put(response, self.max_variants, self.now())
                .within(self.store_timeout),
        )
    }

    pub(crate) fn settle_put(&self, result: Result<(), StoreError>) {
        if result.is_ok() {
            bump(&self.counters.stored);
            ::metrics::counter!(metrics::STORED).increment(1);
        }
        self.settle("put", result, self.micros());
    }

    /// Stores `response` and waits for the store (within its deadline).
    pub(crate) async fn put(&self, response: Arc<StoredResponse>) {
        if let Some(call) = self.put_call(response) {
            self.settle_put(call.await);
        }
    }

    /// Removes every variant of each key (a §4.4 invalidation), each call within the store
    /// deadline; failures are counted, not returned.
    pub(crate) async fn remove(&self, keys: &[crate::CacheKey]) {
        for key in keys {
            self.guarded("remove", || self.store.remove(key)).await;
        }
    }

    fn settle(&self, op: &'static str, result: Result<(), StoreError>, micros: i64) {
        match result {
            Ok(()) => self.breaker.success(),
            Err(error) => {
                self.settle_failure(&error, micros);
                self.store_failed(op, error.kind(), &error);
            }
        }
    }

    /// A failed call opens the breaker after a few, but not an out-of-memory refusal: a
    /// full Redis still answers (reads work, and a `TieredStore`'s memory hits must go on),
    /// it only refuses writes, which then fail fast on their own. Nor a value the store
    /// refuses to take (`InvalidArgument`: a response too large for its format). Neither
    /// counts toward the breaker nor resets its count of other failures.
    fn settle_failure(&self, error: &StoreError, micros: i64) {
        // A full Redis, or a value the store refuses to take, says nothing of its health.
        if !matches!(
            error,
            StoreError::OutOfMemory(_) | StoreError::InvalidArgument(_)
        ) {
            self.breaker.failure(micros);
        }
    }

    fn store_failed(&self, op: &'static str, kind: &'static str, cause: &dyn std::fmt::Display) {
        bump(&self.counters.store_errors);
        ::metrics::counter!(metrics::STORE_ERRORS, "op" => op, "kind" => kind).increment(1);
        self.failures.failure(self.micros(), kind, "origin", cause);
    }

    /// Whether and how a response may be stored (RFC 9111 §3 with the configured options),
    /// from its head alone. `Err` carries the `Cache-Status` detail.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan(
        &self,
        method: &Method,
        request: &HeaderMap,
        status: StatusCode,
        response: &HeaderMap,
        targeted: Option<CacheControl>,
        received: SystemTime,
        override_ttl: Option<Duration>,
    ) -> Result<Plan, &'static str> {
        // RFC 9213 §2.1: a cache that uses a targeted field ignores Cache-Control (and
        // Expires) when the field is present and valid.
        let cdn = || {
            self.cdn_cache_control
                .then(|| targeted_field(response, &CDN_CACHE_CONTROL))
                .flatten()
        };
        let targeted = targeted.or_else(cdn);
        // A targeted field may lift `no-store` for this cache (RFC 9213's use), never
        // `private`: a response for one user is never shared, whatever else it says.
        if targeted.is_some() && CacheControl::from_headers(response).private.is_present() {
            return Err("private");
        }
        let cc = targeted
            .clone()
            .unwrap_or_else(|| CacheControl::from_headers(response));
        let heuristic = self.heuristic.unwrap_or(Heuristic {
            percent: 0,
            max: Duration::ZERO,
        });
        let lifetime = if targeted.is_some() {
            // Only the targeted field's own directives count: no Expires, no heuristic.
            [cc.s_maxage, cc.max_age].into_iter().find_map(|d| match d {
                crate::policy::Delta::Absent => None,
                other => Some(other.seconds().unwrap_or_default()),
            })
        } else {
            let explicit = has_explicit_freshness(response, &cc);
            let heuristic_allowed =
                self.heuristic.is_some() && !needs_explicit_freshness(request, status);
            // §3, §5.2.2.4: a `no-cache` response with a validator and no lifetime may be
            // stored when its status allows storing at all; it is stale at once and
            // revalidated on every use (a `304` is cheap), kept for `keep` after.
            let validator = response.contains_key(http::header::ETAG)
                || response.contains_key(http::header::LAST_MODIFIED);
            let revalidate_only = cc.no_cache == Fields::All
                && validator
                && crate::policy::is_heuristically_cacheable(status)
                && !needs_explicit_freshness(request, status);
            freshness_lifetime(status, response, &cc, received, heuristic)
                .filter(|_| explicit || heuristic_allowed)
                .or_else(|| revalidate_only.then_some(Duration::ZERO))
        };
        let lifetime = lifetime
            .or(override_ttl)
            .or(self.default_ttl)
            .map(|l| self.jittered(l));
        let mut strip = Vec::new();
        let mut checked = response;
        let without_cookies;
        if response.contains_key(SET_COOKIE) {
            match self.set_cookie {
                SetCookie::Bypass => {}
                SetCookie::Strip => {
                    strip.push(SET_COOKIE);
                    let mut copy = response.clone();
                    copy.remove(SET_COOKIE);
                    without_cookies = copy;
                    checked = &without_cookies;
                }
                SetCookie::StoreAsIs => {
                    let mut copy = response.clone();
                    copy.remove(SET_COOKIE);
                    without_cookies = copy;
                    checked = &without_cookies;
                }
            }
        }
        storability(method, request, status, checked, &cc, lifetime.is_some()).map_err(detail)?;
        if crate::vary::fields(response).is_none() {
            return Err("vary-too-large");
        }
        if let Fields::Named(names) = &cc.no_cache {
            // §5.2.2.4: the named fields may not be reused without revalidation; the cache
            // leaves them out of its copy instead.
            strip.extend(
                names
                    .iter()
                    .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()),
            );
        }
        let allows = |d: crate::policy::Delta| d.seconds().unwrap_or_default();
        // s-maxage implies proxy-revalidate (§5.2.2.10) unless the response itself grants
        // stale windows (RFC 5861), which are the origin's explicit permission.
        let explicit_stale =
            cc.stale_while_revalidate.is_present() || cc.stale_if_error.is_present();
        let rules = ReuseRules {
            no_cache: cc.no_cache == Fields::All,
            must_revalidate: cc.must_revalidate
                || cc.proxy_revalidate
                || (cc.s_maxage.is_present() && !explicit_stale),
            while_revalidate: allows(cc.stale_while_revalidate).max(self.grace),
            if_error: allows(cc.stale_if_error).max(self.grace),
            keep: self.keep,
        };
        Ok(Plan {
            lifetime: lifetime.unwrap_or_default(),
            rules,
            strip,
        })
    }

    /// `lifetime` shortened by a random share of up to `ttl_jitter` percent, so that entries
    /// stored together do not all expire together.
    fn jittered(&self, lifetime: Duration) -> Duration {
        if self.ttl_jitter == 0 {
            return lifetime;
        }
        let share = random_unit() * f64::from(self.ttl_jitter) / 100.0;
        lifetime.mul_f64(1.0 - share)
    }

    /// XFetch (probabilistic early expiration): a fresh hit starts a background refresh
    /// with a probability that grows as expiry nears, scaled by how long the origin took
    /// (`received − requested`) and β: refresh when `age + δ·β·(−ln U) ≥ lifetime`.
    pub(crate) fn refreshes_early(&self, stored: &StoredResponse, age: Duration) -> bool {
        if self.early_refresh <= 0.0 {
            return false;
        }
        let delta = stored
            .received
            .duration_since(stored.requested)
            .unwrap_or_default();
        let draw = -random_unit().max(f64::MIN_POSITIVE).ln();
        let ahead = delta.as_secs_f64() * self.early_refresh * draw;
        age.as_secs_f64() + ahead >= stored.lifetime.as_secs_f64()
    }

    /// Takes the distributed fetch lease for `key` within the store deadline; a store that
    /// is slow or failing grants it (the request then fetches, as without a lease).
    pub(crate) async fn take_lease(
        &self,
        key: &crate::CacheKey,
        variant: &[u8],
        token: u64,
    ) -> bool {
        self.guarded("lease", || {
            self.store.lease(key, variant, token, self.leader_timeout)
        })
        .await
        .unwrap_or(true)
    }

    /// A key used for at most one background refresh at a time: true if this call took it.
    pub(crate) fn start_refresh(&self, h: u64) -> bool {
        self.refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(h)
    }

    pub(crate) fn end_refresh(&self, h: u64) {
        self.refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&h);
    }

    pub(crate) fn counter(&self, which: impl Fn(&Counters) -> &AtomicU64) {
        bump(which(&self.counters));
    }
}

fn has_explicit_freshness(response: &HeaderMap, cc: &CacheControl) -> bool {
    cc.s_maxage.is_present()
        || cc.max_age.is_present()
        || response.contains_key(http::header::EXPIRES)
}

/// The directives of a targeted field (RFC 9213 §2), or `None` when it is absent or not
/// a valid Structured Field Dictionary (RFC 9651 §4.2.2), every line joined: an invalid
/// field is ignored whole (§2.1), and `Cache-Control` decides.
pub(crate) fn targeted_field(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
    let mut text = String::new();
    for line in headers.get_all(name) {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(line.to_str().ok()?);
    }
    if text.is_empty() {
        return None;
    }
    let dictionary: sfv::Dictionary = sfv::Parser::new(&text).parse().ok()?;
    // A lifetime that is not a non-negative sf-integer (`max-age="10000"`) makes the field
    // invalid too.
    const DELTAS: [&str; 4] = [
        "max-age",
        "s-maxage",
        "stale-while-revalidate",
        "stale-if-error",
    ];
    for (key, entry) in &dictionary {
        if DELTAS.contains(&key.as_str()) {
            let sfv::ListEntry::Item(item) = entry else {
                return None;
            };
            let delta = item.bare_item.as_integer().map(i64::from)?;
            if delta < 0 {
                return None;
            }
        }
    }
    Some(CacheControl::parse(&text))
}

/// A `Connection` option other than `close`, `keep-alive`, `upgrade` and `te` (or a field
/// that cannot be read).
fn unusual_connection_option(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|line| {
        let Ok(line) = line.to_str() else {
            return true;
        };
        line.split(',').map(str::trim).any(|option| {
            !option.is_empty()
                && !["close", "keep-alive", "upgrade", "te"]
                    .iter()
                    .any(|usual| option.eq_ignore_ascii_case(usual))
        })
    })
}

/// The `Cache-Status` detail of an answer not stored for the request's credentials.
pub(crate) const CREDENTIALS: &str = "credentials";

fn detail(reason: NotStored) -> &'static str {
    match reason {
        NotStored::Method => "method",
        NotStored::Status => "status",
        NotStored::ServerError => "server-error",
        NotStored::Refusal => "refusal",
        NotStored::NoStore => "no-store",
        NotStored::Private => "private",
        NotStored::Credentials => CREDENTIALS,
        NotStored::ClientError => "client-error",
        NotStored::VaryAny => "vary-any",
        NotStored::SetCookie => "set-cookie",
        NotStored::NoFreshness => "no-freshness",
    }
}

/// 64 random bits from the standard library's randomly keyed hasher (no RNG dependency:
/// jitter, XFetch and lease tokens need spread and uniqueness, not secrecy).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A uniform draw in [0, 1).
fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}
