//! Typed configuration of a [`CacheLayer`](crate::CacheLayer).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderName;
use parapet_core::{Breaker, ClientIp, Clock, ConfigError, FailureLog, RequestHead, SystemClock};
use tokio::sync::Semaphore;

use crate::cache_stats::Counters;
use crate::flight::Flights;
use crate::policy::Heuristic;
use crate::purge::Purges;
use crate::shared::Shared;
use crate::store::CacheStore;
use crate::{CacheLayer, KeyPart, MemoryStore, QueryKey, SetCookie};

/// Request fields that change what many origins (or their frameworks) answer but are not in
/// the cache key by default: a request carrying one bypasses the cache, so it can neither
/// poison an entry nor be served one meant for another value. Put one into the key with
/// [`CacheLayerBuilder::key_header`] to cache such requests instead — behind a load balancer that
/// sets `X-Forwarded-Proto` on every request, `.key_header(X_FORWARDED_PROTO)` keeps them
/// cacheable — or add more with [`CacheLayerBuilder::unkeyed_header`].
///
/// A field name spelt with underscores (`X_Forwarded_Host`, which CGI-style frameworks read
/// as `X-Forwarded-Host`) bypasses whatever it names.
pub const UNKEYED_HEADERS: [&str; 18] = [
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-ssl",
    "front-end-https",
    "x-forwarded-protocol",
    "x-url-scheme",
];

/// Builds a [`CacheLayer`]. Every option has a safe default; see each method.
///
/// ```
/// use std::time::Duration;
/// use parapet_cache::{CacheLayer, QueryKey};
///
/// let layer = CacheLayer::builder()
///     .memory_capacity(128 << 20)
///     .max_body_bytes(2 << 20)
///     .query_key(QueryKey::Sorted)
///     .grace(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// ```
pub struct CacheLayerBuilder {
    store: Option<Arc<dyn CacheStore>>,
    memory_capacity: usize,
    query: QueryKey,
    key_parts: Vec<KeyPart>,
    key_headers: Vec<HeaderName>,
    extra_unkeyed: Vec<HeaderName>,
    client_ip: Option<ClientIp>,
    obey_request_directives: bool,
    ttl_jitter: u32,
    early_refresh: f64,
    lease_wait: Option<Duration>,
    max_body_bytes: usize,
    max_in_flight_bytes: usize,
    max_variants: usize,
    default_ttl: Option<Duration>,
    heuristic: Option<Heuristic>,
    grace: Duration,
    keep: Duration,
    set_cookie: SetCookie,
    targeted: Option<String>,
    cdn_cache_control: bool,
    leader_timeout: Duration,
    max_waiters: usize,
    hit_for_miss: Duration,
    origin_timeout: Option<Duration>,
    refresh_tasks: usize,
    store_timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl Default for CacheLayerBuilder {
    fn default() -> Self {
        Self {
            store: None,
            memory_capacity: 64 << 20,
            query: QueryKey::AsIs,
            key_parts: Vec::new(),
            key_headers: Vec::new(),
            extra_unkeyed: Vec::new(),
            client_ip: None,
            obey_request_directives: true,
            ttl_jitter: 0,
            early_refresh: 0.0,
            lease_wait: None,
            max_body_bytes: 1 << 20,
            max_in_flight_bytes: 32 << 20,
            max_variants: 16,
            default_ttl: None,
            heuristic: Some(Heuristic::default()),
            grace: Duration::ZERO,
            keep: Duration::from_secs(60),
            set_cookie: SetCookie::Bypass,
            targeted: None,
            cdn_cache_control: true,
            leader_timeout: Duration::from_secs(5),
            max_waiters: 16_384,
            hit_for_miss: Duration::from_secs(30),
            origin_timeout: None,
            refresh_tasks: 64,
            store_timeout: Duration::from_millis(50),
            clock: Arc::new(SystemClock),
        }
    }
}

impl CacheLayerBuilder {
    /// Where responses are kept. Default: a [`MemoryStore`] of
    /// [`memory_capacity`](Self::memory_capacity) bytes.
    pub fn store(mut self, store: impl CacheStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The byte bound of the default memory store. Default: 64 MiB.
    pub fn memory_capacity(mut self, bytes: usize) -> Self {
        self.memory_capacity = bytes;
        self
    }

    /// How the query string enters the key. Default: [`QueryKey::AsIs`].
    pub fn query_key(mut self, query: QueryKey) -> Self {
        self.query = query;
        self
    }

    /// Adds a part to every key, computed from the request: per-user variants of private
    /// pages (a user id from an extension an auth layer set), a tenant. A request for which
    /// it returns `None` bypasses the cache. Default: none.
    ///
    /// Responses marked `private` are still never stored: the origin must mark per-user
    /// pages cacheable (`public` or `s-maxage`) for this to store them.
    pub fn key_part<F>(mut self, part: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<String> + Send + Sync + 'static,
    {
        self.key_parts.push(Arc::new(part));
        self
    }

    /// Puts a request field into the key (its value, canonicalised), and so takes it off
    /// the bypass list of [`UNKEYED_HEADERS`] if it is there.
    pub fn key_header(mut self, name: HeaderName) -> Self {
        let field = name.clone();
        self.key_parts.push(Arc::new(move |head: &RequestHead<'_>| {
            // Absent, text, and raw bytes each encode apart: no two values share a key.
            if !head.headers.contains_key(&field) {
                return Some(String::new());
            }
            let value = crate::vary::value(head.headers, &field);
            Some(match std::str::from_utf8(&value) {
                Ok(text) => format!("v{text}"),
                Err(_) => value.iter().fold(String::from("x"), |mut hex, b| {
                    hex.push_str(&format!("{b:02x}"));
                    hex
                }),
            })
        }));
        self.key_headers.push(name);
        self
    }

    /// The proxies in front of the service, as every parapet layer of the app reads them
    /// (one [`ClientIp`], configured once). A request whose TCP peer is one of them has its
    /// forwarded scheme, host, port and prefix (`X-Forwarded-Proto`, `-Host`, `-Port`,
    /// `-Prefix`, and `Forwarded`'s `proto=` and `host=`) put into the key instead of
    /// bypassing the cache: behind a load balancer that sets them on every request, the
    /// cache keeps working, and a value a client forged keys an entry only requests with
    /// the same forged value reach. From any other peer those fields still bypass the cache.
    /// Default: none trusted.
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.client_ip = Some(client_ip);
        self
    }

    /// Adds a request field to the bypass list ([`UNKEYED_HEADERS`]): a field your origin
    /// reads that is not in the key.
    pub fn unkeyed_header(mut self, name: HeaderName) -> Self {
        self.extra_unkeyed.push(name);
        self
    }

    /// Whether the request's own `no-cache`, `max-age` and `min-fresh` send it to the origin
    /// for validation (RFC 9111 §5.2.1). With `false`, as CDNs commonly configure, a
    /// client cannot make the cache revalidate at will. `no-store`, `max-stale` and
    /// `only-if-cached` are obeyed either way. Default: true.
    pub fn obey_request_directives(mut self, obey: bool) -> Self {
        self.obey_request_directives = obey;
        self
    }

    /// The largest body kept; a larger response still streams to its client, unstored.
    /// Default: 1 MiB.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The most bytes held at once for responses on their way into the store, summed over
    /// every response in flight: the copy kept until it is stored, and what the cache read
    /// from the origin for a flight's leader that its client has not read yet. Past it,
    /// responses stream through to their clients uncached, at the clients' pace, as a
    /// too-big one does (with no hit-for-miss marker), so that many slow clients asking for
    /// large cacheable responses cannot grow memory past the store's bound plus this one.
    /// The check comes before each read from the origin: one frame per response being read
    /// at that moment may pass it. At least `max_body_bytes` (checked by `build`). Read the current figure with
    /// [`CacheHandle::in_flight_bytes`](crate::CacheHandle::in_flight_bytes); each refusal
    /// counts in `parapet_cache_in_flight_full_total`. A client that stops reading keeps
    /// its share until its connection ends: give the server a write stall timeout (the
    /// examples' server closes a connection whose writes make no progress for 15 s).
    /// Default: 32 MiB.
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Self {
        self.max_in_flight_bytes = bytes;
        self
    }

    /// The most variants (`Vary`) kept per URL. Past it the least used variant leaves
    /// (counted per hit, in memory and on Redis; the first stored among equals), so that
    /// junk values of a `Vary`'d field go before the variants clients use. With a
    /// [`TieredStore`](crate::TieredStore), hits served from the memory tier count in
    /// memory only: Redis's counts see the hits that reached it. Default: 16.
    pub fn max_variants(mut self, variants: usize) -> Self {
        self.max_variants = variants;
        self
    }

    /// Freshness for storable responses that carry no freshness information (no
    /// `max-age`, `s-maxage`, `Expires`, and no heuristic applies). Default: none — such
    /// responses are not stored, as RFC 9111 §3 asks.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The heuristic freshness of RFC 9111 §4.2.2 for responses with `Last-Modified` and
    /// no explicit lifetime, or `None` to use only explicit lifetimes. Default: 10% of the
    /// time since `Last-Modified`, at most a day.
    pub fn heuristic(mut self, heuristic: Option<Heuristic>) -> Self {
        self.heuristic = heuristic;
        self
    }

    /// How long past freshness a response may be served stale while it is refreshed in the
    /// background, or when the origin fails — for responses whose own
    /// `stale-while-revalidate` / `stale-if-error` are shorter, and never for
    /// `must-revalidate`, `proxy-revalidate` or `no-cache` ones. Default: zero.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long a response with a validator (`ETag`, `Last-Modified`) is kept past its
    /// stale windows, so that it can be revalidated (a `304`) instead of fetched again.
    /// Default: 60 s.
    pub fn keep(mut self, keep: Duration) -> Self {
        self.keep = keep;
        self
    }

    /// Shortens each stored lifetime by a random share of up to `percent` (at most 50), so
    /// that responses stored together do not expire, and miss, together. The `Cache-Status`
    /// `ttl` shows the shortened lifetime. Default: 0.
    pub fn ttl_jitter(mut self, percent: u32) -> Self {
        self.ttl_jitter = percent;
        self
    }

    /// Probabilistic early refresh (XFetch): a fresh hit near its expiry starts a background
    /// refresh (at most one per variant) with a probability that grows as expiry nears and
    /// with how long the origin took to answer, scaled by `beta` (1.0 is the usual value;
    /// higher refreshes earlier). Popular entries are then refreshed before they expire and
    /// never miss. Fresh hits then take the general path (a task per request). Default: off.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = beta;
        self
    }

    /// A fetch lease shared by every instance on a Redis or tiered store: of the instances
    /// that miss one resource at once, one takes the lease and fetches; the others look the
    /// store up every 10 ms for up to `wait` and serve what it stored, then fetch themselves.
    /// The lease lives `leader_timeout` at most and is given back (token-checked) when its
    /// holder's fetch ends. A store that is slow or down grants it: requests then fetch as
    /// without a lease. Default: off (one fetch per instance).
    pub fn distributed_lease(mut self, wait: Duration) -> Self {
        self.lease_wait = Some(wait);
        self
    }

    /// What to do with responses that set cookies. Default: [`SetCookie::Bypass`].
    pub fn set_cookie(mut self, policy: SetCookie) -> Self {
        self.set_cookie = policy;
        self
    }

    /// A response field with `Cache-Control` syntax that applies to this cache only and is
    /// removed before the response leaves (RFC 9213 targeted fields), such as
    /// `Parapet-Cache-Control`. When present it takes precedence over `CDN-Cache-Control`
    /// and `Cache-Control`. Default: none.
    pub fn targeted_field(mut self, name: &str) -> Self {
        self.targeted = Some(name.to_owned());
        self
    }

    /// Whether `CDN-Cache-Control` (RFC 9213) takes precedence over `Cache-Control` for
    /// this cache. It is left on the response for caches further downstream. Default: true.
    pub fn cdn_cache_control(mut self, obey: bool) -> Self {
        self.cdn_cache_control = obey;
        self
    }

    /// How long requests that miss wait for a concurrent request fetching the same
    /// variant before going to the origin themselves. Default: 5 s.
    pub fn leader_timeout(mut self, timeout: Duration) -> Self {
        self.leader_timeout = timeout;
        self
    }

    /// The most requests that wait for one fetch; more go to the origin. Default: 16,384.
    pub fn max_waiters(mut self, waiters: usize) -> Self {
        self.max_waiters = waiters;
        self
    }

    /// After a fetch whose response could not be stored, how long misses on that variant
    /// go straight to the origin instead of waiting for each other. Default: 30 s.
    pub fn hit_for_miss(mut self, duration: Duration) -> Self {
        self.hit_for_miss = duration;
        self
    }

    /// How long a revalidation may take before a stale response that `stale-if-error` (or
    /// the grace) allows is served instead; also bounds background refreshes (30 s when
    /// unset). Default: none (the origin's error or answer is awaited).
    pub fn origin_timeout(mut self, timeout: Duration) -> Self {
        self.origin_timeout = Some(timeout);
        self
    }

    /// The most background refreshes running at once. Default: 64.
    pub fn refresh_tasks(mut self, tasks: usize) -> Self {
        self.refresh_tasks = tasks;
        self
    }

    /// The deadline of each remote store call; past it the request goes to the origin.
    /// Default: 50 ms.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The clock (tests use a [`ManualClock`](parapet_core::ManualClock)). Default: the
    /// system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The layer, or what is wrong with the configuration.
    pub fn build(self) -> Result<CacheLayer, ConfigError> {
        if self.max_variants == 0 {
            return Err(ConfigError("max_variants must be at least 1".into()));
        }
        if self.refresh_tasks == 0 {
            return Err(ConfigError("refresh_tasks must be at least 1".into()));
        }
        if self.max_in_flight_bytes < self.max_body_bytes {
            // No response as large as max_body_bytes could ever be stored.
            return Err(ConfigError(format!(
                "max_in_flight_bytes ({}) must be at least max_body_bytes ({})",
                self.max_in_flight_bytes, self.max_body_bytes
            )));
        }
        if let Some(wait) = self.lease_wait
            && wait >= self.leader_timeout
        {
            return Err(ConfigError(format!(
                "distributed_lease's wait ({wait:?}) must be shorter than leader_timeout ({:?})",
                self.leader_timeout
            )));
        }
        if self.ttl_jitter > 50 {
            return Err(ConfigError(format!(
                "ttl_jitter is at most 50 percent, not {}",
                self.ttl_jitter
            )));
        }
        if !(self.early_refresh.is_finite() && self.early_refresh >= 0.0) {
            return Err(ConfigError(
                "early_refresh's beta must be a finite number, zero or more".into(),
            ));
        }
        let targeted = match self.targeted {
            None => None,
            Some(name) => Some(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError(format!("targeted field {name:?} is not a header name"))
            })?),
        };
        let unkeyed = UNKEYED_HEADERS
            .iter()
            .map(|n| HeaderName::from_static(n))
            .chain(self.extra_unkeyed)
            .filter(|n| !self.key_headers.contains(n))
            .collect();
        let mut key_parts = self.key_parts;
        if let Some(client_ip) = self.client_ip.clone() {
            key_parts.push(Arc::new(move |head: &RequestHead<'_>| {
                Some(if client_ip.from_trusted_proxy(head) {
                    crate::forwarded_key::key_part(head.headers)
                } else {
                    // (such requests bypass the cache when they carry a forwarding field)
                    String::new()
                })
            }));
        }
        let store = match self.store {
            Some(store) => store,
            None => Arc::new(MemoryStore::new(self.memory_capacity)),
        };
        let epoch = SystemTime::now() - Duration::from_micros(self.clock.now_micros());
        // Purges made on other instances sharing the store are recorded here too.
        let purges = Arc::new(Purges::default());
        let heard = Arc::clone(&purges);
        store.listen_for_purges(Arc::new(move |notice| {
            let _ = heard.apply(&notice, crate::cache_handle::PURGE_MEMORY);
        }));
        let shared = Shared {
            store,
            query: self.query,
            key_parts,
            forwarded_by: self.client_ip,
            max_body_bytes: self.max_body_bytes,
            max_in_flight_bytes: self.max_in_flight_bytes,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            max_variants: self.max_variants,
            default_ttl: self.default_ttl,
            heuristic: self.heuristic,
            grace: self.grace,
            keep: self.keep,
            set_cookie: self.set_cookie,
            targeted,
            cdn_cache_control: self.cdn_cache_control,
            unkeyed,
            obey_request_directives: self.obey_request_directives,
            ttl_jitter: self.ttl_jitter,
            early_refresh: self.early_refresh,
            lease_wait: self.lease_wait,
            leader_timeout: self.leader_timeout,
            hit_for_miss: self.hit_for_miss,
            origin_timeout: self.origin_timeout,
            refresh_permits: Arc::new(Semaphore::new(self.refresh_tasks)),
            refreshing: Mutex::default(),
            store_timeout: self.store_timeout,
            breaker: Breaker::default(),
            failures: FailureLog::new("cache store", Duration::from_secs(10)),
            flights: Arc::new(Flights::new(self.max_waiters, 10_000)),
            purges: Arc::clone(&purges),
            counters: Counters::default(),
            clock: self.clock,
            epoch,
        };
        Ok(CacheLayer {
            shared: Arc::new(shared),
        })
    }
}

impl std::fmt::Debug for CacheLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayerBuilder")
            .field("query", &self.query)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("default_ttl", &self.default_ttl)
            .field("set_cookie", &self.set_cookie)
            .finish_non_exhaustive()
    }
}
