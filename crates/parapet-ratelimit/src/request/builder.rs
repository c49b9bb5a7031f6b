//! Configuration of a [`RateLimitLayer`].

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use parapet_core::{Breaker, Clock, ConfigError, FailureLog, OnStoreError, SystemClock};

use crate::key::{KeyExtractor, PeerIp};
use crate::request::deny_cache::DenyCache;
use crate::request::limiter::{CostFn, Inner, RefundFn, RejectionFn, Resolver};
use crate::store::{MemoryStore, RateLimitStore, WhenFull};
use crate::{
    HeaderStyle, MissingKey, Policy, PolicySet, Quota, RateLimitError, RateLimitLayer, RateLimiter,
    Rejection, RequestHead, Subject,
};

/// Default capacity of the in-process store (entries).
const DEFAULT_MEMORY_CAPACITY: usize = 100_000;
/// Default capacity of the local deny cache (entries).
const DEFAULT_DENY_CACHE: usize = 10_000;

/// Builds a [`RateLimitLayer`]; every setting has a documented default, and
/// [`build`](Self::build) checks them all.
pub struct RateLimitLayerBuilder {
    /// Name, quota, shadow.
    policies: Vec<(String, Quota, bool)>,
    policy_set: Option<PolicySet>,
    resolver: Option<Resolver>,
    key: Option<Box<dyn KeyExtractor>>,
    store: Option<Arc<dyn RateLimitStore>>,
    cost: Option<CostFn>,
    header_style: HeaderStyle,
    on_store_error: OnStoreError,
    missing_key: MissingKey,
    allow_list: HashSet<Subject>,
    deny_cache: usize,
    memory_capacity: usize,
    when_memory_full: WhenFull,
    rejection_response: Option<RejectionFn>,
    refund_when: Option<RefundFn>,
    clock: Arc<dyn Clock>,
}

impl RateLimitLayerBuilder {
    pub(crate) fn new() -> Self {
        Self {
            policies: Vec::new(),
            policy_set: None,
            resolver: None,
            key: None,
            store: None,
            cost: None,
            header_style: HeaderStyle::default(),
            on_store_error: OnStoreError::Fallback,
            missing_key: MissingKey::default(),
            allow_list: HashSet::new(),
            deny_cache: DEFAULT_DENY_CACHE,
            memory_capacity: DEFAULT_MEMORY_CAPACITY,
            when_memory_full: WhenFull::default(),
            rejection_response: None,
            refund_when: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Adds a policy charged on every request (checked at [`build`](Self::build)). Several
    /// policies are charged all or nothing.
    #[must_use]
    pub fn policy(mut self, name: impl Into<String>, quota: Quota) -> Self {
        self.policies.push((name.into(), quota, false));
        self
    }

    /// Adds a policy in shadow (dry-run) mode ([`Policy::shadow`]): decided, counted
    /// (`outcome="shadow_limited"`), logged at debug level and reported in the rate-limit
    /// fields, but never refusing — for trying a new limit on real traffic before enforcing
    /// it with [`policy`](Self::policy) (same name and quota: the state carries over).
    #[must_use]
    pub fn shadow_policy(mut self, name: impl Into<String>, quota: Quota) -> Self {
        self.policies.push((name.into(), quota, true));
        self
    }

    /// Charges this set on every request (instead of [`policy`](Self::policy)).
    #[must_use]
    pub fn policies(mut self, set: PolicySet) -> Self {
        self.policy_set = Some(set);
        self
    }

    /// Chooses the policies per request (method, path, extensions); `None` lets the request
    /// through unlimited. Replaces [`policy`](Self::policy) and [`policies`](Self::policies).
    ///
    /// ```
    /// use parapet_ratelimit::{Policy, PolicySet, Quota, RateLimitLayer};
    ///
    /// let login = PolicySet::from(Policy::new("login", Quota::per_minute(5))?);
    /// let api = PolicySet::from(Policy::new("api", Quota::per_minute(600))?);
    /// let layer = RateLimitLayer::builder()
    ///     .resolver(move |head| match head.uri.path() {
    ///         "/health" => None,
    ///         "/login" => Some(login.clone()),
    ///         _ => Some(api.clone()),
    ///     })
    ///     .build()?;
    /// # Ok::<(), parapet_core::ConfigError>(())
    /// ```
    #[must_use]
    pub fn resolver<F>(mut self, resolver: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<PolicySet> + Send + Sync + 'static,
    {
        self.resolver = Some(Box::new(resolver));
        self
    }

    /// Who a request is charged to (default [`PeerIp::new`]: the TCP peer, IPv6 folded to
    /// /56, read from plain hyper's `SocketAddr`, axum's `ConnectInfo` with feature `axum`,
    /// or tonic's `TcpConnectInfo` with feature `tonic`). Behind a proxy, use
    /// [`ClientIp`](crate::key::ClientIp).
    #[must_use]
    pub fn key(mut self, key: impl KeyExtractor) -> Self {
        self.key = Some(Box::new(key));
        self
    }

    /// Where state lives (default: a [`MemoryStore`] of
    /// [`memory_capacity`](Self::memory_capacity) entries). Use a
    /// [`RedisStore`](crate::RedisStore) to share limits across instances.
    #[must_use]
    pub fn store(mut self, store: impl RateLimitStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// How many units a request costs (default 1). A cost of 0 lets the request through
    /// uncounted; a cost above a policy's burst can never be admitted and is refused with
    /// `400` (no `Retry-After`: waiting does not help).
    #[must_use]
    pub fn cost<F>(mut self, cost: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> u32 + Send + Sync + 'static,
    {
        self.cost = Some(Box::new(cost));
        self
    }

    /// Which rate-limit header fields responses carry (default [`HeaderStyle::None`]: only
    /// `Retry-After` on refusals).
    #[must_use]
    pub fn headers(mut self, style: HeaderStyle) -> Self {
        self.header_style = style;
        self
    }

    /// What to do when the store fails or misses its deadline (default
    /// [`OnStoreError::Fallback`]).
    ///
    /// - `Fallback` (default): decide with an in-process store of the same policies until
    ///   the store answers again. Limits keep holding per instance, so the worst case
    ///   during an outage is **instances × quota** for a client spread over all of them;
    ///   an attacker who slows Redis gains at most that, never an unlimited door.
    /// - `FailClosed`: refuse with `503` and `Retry-After: 1` (strict quotas, at the
    ///   price of availability).
    /// - `FailOpen`: admit uncounted (availability first; anyone who can make Redis slow
    ///   switches limiting off).
    ///
    /// Every failure is counted (`parapet_ratelimit_store_errors_total{kind,action}`); the
    /// first is logged at `warn` with its cause, then one summary every 10 seconds.
    #[must_use]
    pub fn on_store_error(mut self, policy: OnStoreError) -> Self {
        self.on_store_error = policy;
        self
    }

    /// What to do with a request without a key (default [`MissingKey::Reject`]: `400`).
    #[must_use]
    pub fn missing_key(mut self, missing_key: MissingKey) -> Self {
        self.missing_key = missing_key;
        self
    }

    /// A key that is never limited (a monitoring probe, an internal caller). For a list
    /// shared and changed at run time, use [`RateLimiter::allow`].
    #[must_use]
    pub fn allow_key(mut self, subject: Subject) -> Self {
        self.allow_list.insert(subject);
        self
    }

    /// Capacity of the local deny cache in entries (default 10,000; 0 turns it off). It only
    /// serves remote stores.
    #[must_use]
    pub fn deny_cache(mut self, capacity: usize) -> Self {
        self.deny_cache = capacity;
        self
    }

    /// Capacity of the in-process store (the default store and the `Fallback` one), in
    /// entries (default 100,000; about 2–4 MiB).
    #[must_use]
    pub fn memory_capacity(mut self, capacity: usize) -> Self {
        self.memory_capacity = capacity;
        self
    }

    /// What the in-process store does when full of live entries (default
    /// [`WhenFull::EvictNearestExpiry`]; see [`MemoryStore`] for the worst case of each).
    #[must_use]
    pub fn when_memory_full(mut self, when_full: WhenFull) -> Self {
        self.when_memory_full = when_full;
        self
    }

    /// Builds refusal responses yourself (default [`Rejection::default_response`]).
    /// `Retry-After` and the rate-limit fields are added to what it returns.
    #[must_use]
    pub fn rejection_response<F>(mut self, build: F) -> Self
    where
        F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.rejection_response = Some(Box::new(build));
        self
    }

    /// Gives a request's charge back when `predicate` holds for its response's status, so
    /// that only some outcomes count: failed logins only with
    /// `.refund_when(|status| status != StatusCode::UNAUTHORIZED)`, or not your own errors
    /// with `.refund_when(|status| status.is_server_error())`. Default: every admitted
    /// request counts.
    ///
    /// The decision is still made before the handler runs, so until the response is known
    /// the charge counts (concurrent requests see it). A refund is one more store call,
    /// made only for refunded responses: in-process at once, on Redis in a background task
    /// after the response is sent (a lost refund is counted as a store error with action
    /// `refund_lost`). Other instances' deny caches are not told of refunds; a refusal they
    /// cached ends when it was due. Requests admitted by the `Fallback` limiter during an
    /// outage are not refunded.
    ///
    /// Refund only what a client cannot cause at will: `refund_when(|s| s.is_server_error())`
    /// gives unlimited requests to anyone who can make your handler fail.
    ///
    /// ```
    /// use http::StatusCode;
    /// use parapet_ratelimit::{Quota, RateLimitLayer};
    ///
    /// let logins = RateLimitLayer::builder()
    ///     .policy("failed-logins", Quota::per_hour(10))
    ///     .refund_when(|status| status != StatusCode::UNAUTHORIZED)
    ///     .build()?;
    /// # Ok::<(), parapet_core::ConfigError>(())
    /// ```
    #[must_use]
    pub fn refund_when<F>(mut self, predicate: F) -> Self
    where
        F: Fn(http::StatusCode) -> bool + Send + Sync + 'static,
    {
        self.refund_when = Some(Box::new(predicate));
        self
    }

    /// The clock of the in-process store and the deny cache (default: the system's
    /// monotonic clock; tests use a `ManualClock`).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the configuration and builds the layer: a [`ConfigError`] (the same type
    /// every parapet layer's `build()` returns) says what is wrong.
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        self.checked().map_err(ConfigError::from)
    }

    fn checked(self) -> Result<RateLimitLayer, RateLimitError> {
        if self.memory_capacity == 0 {
            return Err(RateLimitError::InvalidConfig(
                "memory capacity must be above zero",
            ));
        }
        let resolver: Resolver = match (self.resolver, self.policy_set, self.policies.is_empty()) {
            (Some(resolver), None, true) => resolver,
            (Some(_), _, _) => {
                return Err(RateLimitError::InvalidConfig(
                    "use either a resolver or fixed policies, not both",
                ));
            }
            (None, Some(set), true) => Box::new(move |_| Some(set.clone())),
            (None, Some(_), false) => {
                return Err(RateLimitError::InvalidConfig(
                    "use either .policies(set) or .policy(name, quota), not both",
                ));
            }
            (None, None, true) => return Err(RateLimitError::NoPolicy),
            (None, None, false) => {
                let policies = self
                    .policies
                    .into_iter()
                    .map(|(name, quota, shadow)| {
                        Policy::new(name, quota).map(|p| if shadow { p.shadow() } else { p })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let set = PolicySet::new(policies)?;
                Box::new(move |_| Some(set.clone()))
            }
        };
        let memory = || {
            MemoryStore::with_clock(self.memory_capacity, self.clock.clone())
                .when_full(self.when_memory_full)
        };
        let store = self.store.unwrap_or_else(|| Arc::new(memory()));
        let remote = store.is_remote();
        let deny_cache =
            (remote && self.deny_cache > 0).then(|| Arc::new(DenyCache::new(self.deny_cache)));
        let changes = deny_cache.as_ref().and_then(|cache| {
            let cache = cache.clone();
            store.changes(Arc::new(move || cache.clear()))
        });
        // Subscribe now (within a runtime), not at the first refusal: a health check that
        // reports `is_in_sync` sees the subscription come up with the service.
        if let Some(changes) = &changes {
            changes.start();
        }
        let inner = Inner {
            // Only a remote store can fail; an in-process one needs no substitute.
            fallback: (remote && self.on_store_error == OnStoreError::Fallback).then(memory),
            deny_cache,
            changes,
            store,
            key: self.key.unwrap_or_else(|| Box::new(PeerIp::new())),
            resolver,
            cost: self.cost,
            header_style: self.header_style,
            on_store_error: self.on_store_error,
            missing_key: self.missing_key,
            allow_list: self.allow_list,
            breaker: Breaker::default(),
            failures: FailureLog::new("rate-limit store call", Duration::from_secs(10)),
            misconfiguration_logged: AtomicBool::new(false),
            rejection_response: self.rejection_response,
            refund_when: self.refund_when,
            clock: self.clock,
        };
        Ok(RateLimitLayer::new(RateLimiter::new(inner)))
    }
}

impl fmt::Debug for RateLimitLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("policies", &self.policies)
            .field("store", &self.store)
            .field("header_style", &self.header_style)
            .field("on_store_error", &self.on_store_error)
            .finish_non_exhaustive()
    }
}
