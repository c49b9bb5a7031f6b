//! A response as the cache keeps it.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ETAG, LAST_MODIFIED};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::CacheKey;
use crate::policy::current_age;

/// A stored response: its head and body, the request values that select it (`Vary`), and
/// what the cache decided about it when it arrived.
///
/// Stores keep and return these; the layer builds them. The body is [`Bytes`]: a hit hands
/// out a reference to the same buffer, never a copy.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub(crate) key: CacheKey,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) vary_values: Vec<Box<[u8]>>,
    pub(crate) requested: SystemTime,
    pub(crate) received: SystemTime,
    pub(crate) lifetime: Duration,
    /// The age it had when it arrived (§4.2.3 `corrected_initial_age`), computed once.
    pub(crate) initial_age: Duration,
    pub(crate) rules: ReuseRules,
    pub(crate) tags: Vec<String>,
}

/// What the response's directives and the configuration allow once it is stale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReuseRules {
    /// `no-cache` (without field names): validate before every reuse.
    pub no_cache: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `stale-while-revalidate` window (RFC 5861 §3), or the configured grace.
    pub while_revalidate: Duration,
    /// `stale-if-error` window (RFC 5861 §4), or the configured grace.
    pub if_error: Duration,
    /// How long past its last stale window the entry is kept for revalidation (only with a
    /// validator).
    pub keep: Duration,
}

impl StoredResponse {
    /// The key it is stored under.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The header fields, as stored (hop-by-hop and stripped fields removed).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Whether this variant matches a request's `Vary`-named fields (RFC 9111 §4.1), in
    /// their canonical forms.
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.vary
            .iter()
            .zip(&self.vary_values)
            .all(|(name, stored)| crate::vary::value(request, name) == *stored)
    }

    /// Whether this and `other` are the same variant of the same resource.
    pub fn same_variant(&self, other: &StoredResponse) -> bool {
        self.key == other.key && self.vary == other.vary && self.vary_values == other.vary_values
    }

    /// The age now (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> Duration {
        let resident = now.duration_since(self.received).unwrap_or_default();
        self.initial_age.saturating_add(resident)
    }

    /// The age a response with these headers had when it arrived.
    pub(crate) fn initial_age(
        headers: &HeaderMap,
        requested: SystemTime,
        received: SystemTime,
    ) -> Duration {
        current_age(headers, requested, received, received)
    }

    /// How long it stays fresh from when it arrived.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// When it arrived.
    pub fn received(&self) -> SystemTime {
        self.received
    }

    /// The tags it was stored with (`Surrogate-Key`, `Cache-Tag`).
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// How long a store keeps it after it arrived: its freshness, then the longest window in
    /// which it may still be served stale or revalidated.
    pub fn storage_time(&self) -> Duration {
        let rules = &self.rules;
        let mut extra = Duration::ZERO;
        if !rules.must_revalidate {
            extra = rules.while_revalidate.max(rules.if_error);
        }
        if self.etag().is_some() || self.last_modified().is_some() {
            extra = extra.max(rules.keep);
        }
        self.lifetime.saturating_add(extra)
    }

    /// When a store may forget it.
    pub fn expires(&self) -> SystemTime {
        self.received
            .checked_add(self.storage_time())
            .unwrap_or(self.received)
    }

    /// Its `ETag`.
    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(ETAG)
    }

    /// Its `Last-Modified`.
    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(LAST_MODIFIED)
    }

    /// The bytes it occupies in memory, roughly: key, header block and body.
    pub fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        let vary: usize = self.vary_values.iter().map(|v| v.len() + 24).sum();
        let tags: usize = self.tags.iter().map(|t| t.len() + 24).sum();
        std::mem::size_of::<Self>()
            + self.key.as_bytes().len()
            + headers
            + vary
            + tags
            + self.body.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small stored response for unit tests.
    pub(crate) fn sample() -> StoredResponse {
        StoredResponse {
            key: CacheKey::new("http", "a.example", "/"),
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"x"),
            vary: Vec::new(),
            vary_values: Vec::new(),
            requested: SystemTime::UNIX_EPOCH,
            received: SystemTime::UNIX_EPOCH,
            lifetime: Duration::from_secs(60),
            initial_age: Duration::ZERO,
            rules: ReuseRules::default(),
            tags: Vec::new(),
        }
    }
}
