//! An RFC 9111 shared cache as a tower layer: in memory by default.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use parapet_cache::CacheLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(CacheLayer::new())
//!     .service_fn(|_req: Request<String>| async {
//!         let mut response = Response::new(String::from("products"));
//!         response.headers_mut().insert("cache-control", "public, max-age=30".parse().unwrap());
//!         Ok::<_, Infallible>(response)
//!     });
//! let get = || Request::get("http://shop.example/api/products").body(String::new()).unwrap();
//! let miss = service.clone().oneshot(get()).await.unwrap();
//! assert_eq!(miss.headers()["cache-status"], "parapet; fwd=uri-miss; fwd-status=200; stored");
//! let _ = http_body_util::BodyExt::collect(miss.into_body()).await; // stored at its end
//! let hit = service.oneshot(get()).await.unwrap();
//! assert!(hit.headers()["cache-status"].to_str().unwrap().starts_with("parapet; hit"));
//! # }
//! ```
//!
//! ## What it does
//!
//! - **RFC 9111 for a shared cache.** Freshness from `s-maxage` > `max-age` > `Expires`,
//!   the §4.2.2 heuristic only where allowed; `Age`; request directives (`no-cache`,
//!   `no-store`, `max-age`, `max-stale`, `min-fresh`, `only-if-cached`); response
//!   directives (`no-cache` incl. its field-name form, `must-revalidate`,
//!   `proxy-revalidate`, `private`, `public`, `s-maxage`); one stored variant per `Vary`
//!   combination (`Vary: *` never stored); validation with the stored validators and the
//!   §4.3.4 header update; invalidation by unsafe methods (§4.4, target URI plus same-origin
//!   `Location` / `Content-Location`); `HEAD` answered from a stored `GET`.
//! - **Conditional requests** (RFC 9110 §13): `If-None-Match` (weak comparison) and
//!   `If-Modified-Since` answered with `304` from the stored response.
//! - **RFC 5861** `stale-while-revalidate` (one background refresh per variant, on a
//!   bounded set of tasks) and `stale-if-error` (origin error, `5xx` or
//!   [`origin_timeout`](CacheLayerBuilder::origin_timeout)), plus a configured
//!   [`grace`](CacheLayerBuilder::grace).
//! - **RFC 9213** `CDN-Cache-Control`, and a [targeted field](CacheLayerBuilder::targeted_field)
//!   for this cache alone, removed before the response leaves.
//! - **RFC 9211** `Cache-Status` on every response except gRPC (`hit`, `fwd=uri-miss`,
//!   `vary-miss`, `stale`, `request`, `bypass`, `method`, `fwd-status`, `ttl`, `stored`,
//!   `collapsed`, `detail`).
//! - **Request collapsing**: concurrent misses and revalidations of one variant make one
//!   origin call; waiters get the leader's answer as stored (filtered exactly like a store
//!   hit), never its response, so a `private` or `Set-Cookie` answer cannot reach them. With
//!   [`distributed_lease`](CacheLayerBuilder::distributed_lease), instances sharing Redis take
//!   turns too. [`ttl_jitter`](CacheLayerBuilder::ttl_jitter) and
//!   [`early_refresh`](CacheLayerBuilder::early_refresh) (XFetch) keep hot entries from
//!   expiring together.
//! - **Safe in any order with the other parapet layers**: an answer whose request carries
//!   a marked [`parapet_core::Personal`] (the session layer marks it when a handler touches
//!   the session, the JWT guard when it verifies a token; every layer of a request shares
//!   one) is never stored, never refreshes or replaces a stored one, whatever its
//!   `Cache-Control` says. The per-request rate-limit fields
//!   ([`parapet_core::decision_fields::ALL`]: `RateLimit`, `RateLimit-Policy`,
//!   `X-RateLimit-Limit`, `-Remaining`, `-Reset`) are stripped from what is stored, so a
//!   hit never replays another request's decision; a limiter's `Retry-After` comes only on
//!   refusals, which are never stored.
//! - **Safe defaults**: only `GET`/`HEAD`; no `Set-Cookie` stored ([`SetCookie`]); no
//!   `private`, `no-store`, `Authorization` (§3.5), `401`, `403`, `429` or `5xx`
//!   responses stored; requests with
//!   [`UNKEYED_HEADERS`] bypass the cache; bodies over
//!   [`max_body_bytes`](CacheLayerBuilder::max_body_bytes) stream through unstored; the whole
//!   canonical key is compared on read.
//! - **Streaming**: storability is decided from the head; uncacheable bodies pass through
//!   untouched, cacheable ones are copied as they stream. Hits share one `Bytes` buffer.
//! - **Invalidation** from a [`CacheHandle`]: by key, path prefix and tag (`Surrogate-Key`,
//!   `Cache-Tag`) in O(1), hard or soft.
//!
//! ## Limits and defaults to know
//!
//! - Heuristic freshness (§4.2.2) is on: a `200` with `Last-Modified` and no explicit
//!   lifetime is kept for 10 % of its age, at most a day. `.heuristic(None)` turns it off.
//! - `CDN-Cache-Control` is obeyed by default and may lift `no-store` for this cache; it
//!   never lifts `private`.
//! - `s-maxage` implies `proxy-revalidate` (§5.2.2.10): such responses are not served stale,
//!   not even within the configured grace, unless they carry `stale-while-revalidate` or
//!   `stale-if-error` themselves.
//! - Prefix and tag purges are records kept by every instance (a purge is one record, so
//!   nothing is scanned): on a [`RedisStore`] or [`TieredStore`] they are also kept in
//!   Redis and announced on the fan-out, so every instance applies them within milliseconds
//!   and an instance that (re)subscribes reads them back. A purge shared through Redis is
//!   dated by Redis's clock (`TIME`, in the script that records it) and each instance
//!   converts it to its own clock (offset measured with `TIME` at each (re)subscription),
//!   so a purging instance's skew does not purge too much or too little elsewhere; a
//!   storing instance's skew still blurs what it stored by as much (a purge is compared
//!   with the time a response arrived, by the clock of the instance that stored it).
//!   Invalidation by key and by unsafe methods deletes the Redis entry and so reaches every
//!   instance (and every memory tier); a store that replaces a variant stored in Redis is
//!   announced too, and every other instance's memory tier drops its older copy.
//! - A flight's response is read into the store by the cache (a task per leader), not at
//!   its client's pace: a leader whose client reads slowly, or not at all, delays no
//!   waiter beyond the origin's own time; a leader that goes away before its response
//!   hands the flight to a waiter. Waiters still go to the origin on their own after
//!   `leader_timeout` when the origin itself is that slow.
//! - Bytes held for responses on their way into the store are bounded by
//!   [`max_in_flight_bytes`](CacheLayerBuilder::max_in_flight_bytes) (32 MiB): past it,
//!   responses stream through uncached at their clients' pace.
//! - Ranges (RFC 9110 §14) are served from a fresh stored `200`: one range as a `206`,
//!   several as `multipart/byteranges` (at most 16), none satisfiable as `416`, `If-Range`
//!   compared strongly. A range asked of a response not stored, stale or revalidated goes
//!   to the origin as sent and its answer is not stored: nothing partial is stored, and a
//!   range request never fills the cache (a plain `GET` does).
//!
//! ## Choices
//!
//! - **Policy engine: ours, with `http-cache-semantics` set aside.** That crate models a
//!   private or shared cache as one policy object per response, serialised with serde; it
//!   has no notion of a targeted field (RFC 9213), of `stale-if-error`, or of
//!   `Cache-Status`, and its storability rules differ from the safety defaults here
//!   (it stores `Set-Cookie` responses in shared mode when `public`). The rules are small,
//!   pure functions in [`policy`], property-tested on their own.
//! - `Cache-Control` is parsed here rather than with the `headers` crate's typed
//!   `CacheControl`: that type fails the whole field on one malformed directive (which
//!   would lose a `private` next to it), and has neither the field-name forms of `no-cache`
//!   and `private` nor RFC 5861's directives. HTTP dates: `httpdate`. A targeted field
//!   (`CDN-Cache-Control`) is a Structured Field Dictionary (RFC 9213 §2): `sfv`, already
//!   the rate limiter's, says whether it is valid; an invalid one is ignored whole.
//! - Memory store: our own byte-bounded map ([`MemoryStore`]); a general TTL cache (moka)
//!   enforces its weight bound after the insert, in the background, and the bound here
//!   holds at insert time.
//! - `Cache-Status` values are written into a `smallvec` buffer on the stack (it would
//!   spill to the heap rather than cut a longer one): one allocation per response for it.

mod cache_handle;
mod cache_layer_builder;
mod cache_override;
mod cache_stats;
mod capture_body;
mod conditional;
mod flight;
mod flow;
mod forwarded_key;
mod future;
mod key;
mod layer;
pub mod metrics;
pub mod policy;
mod pump;
mod purge;
mod query_key;
mod ranges;
mod refresh;
mod service;
mod set_cookie;
mod shared;
mod status;
pub mod store;
mod stored;
mod vary;

pub use cache_handle::CacheHandle;
pub use cache_layer_builder::{CacheLayerBuilder, UNKEYED_HEADERS};
pub use cache_override::CacheOverride;
pub use cache_stats::CacheStats;
pub use capture_body::CaptureBody;
pub use future::ResponseFuture;
pub use key::CacheKey;
pub use layer::CacheLayer;
pub use query_key::QueryKey;
pub use service::Cache;
pub use set_cookie::SetCookie;
pub use store::{CacheStore, Lookup, MemoryStore, PurgeNotice, RedisStore, TieredStore};
pub use stored::StoredResponse;

/// A custom part of every cache key: see [`CacheLayerBuilder::key_part`].
pub type KeyPart =
    std::sync::Arc<dyn Fn(&parapet_core::RequestHead<'_>) -> Option<String> + Send + Sync>;

/// The `Cache-Status` field (RFC 9211).
pub const CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");
