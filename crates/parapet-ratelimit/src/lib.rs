//! A tower rate-limit layer: exact, distributed, and cheap.
//!
//! - **Algorithm**: GCRA in integer microseconds — a rate per period plus a burst, weighted
//!   costs, no window-edge bursts, exact `Retry-After` (a client that waits it is admitted).
//!   Refusals write nothing.
//! - **Several policies per request** (100/minute *and* 1000/hour), charged all or nothing;
//!   per-route policies with `route_layer` or a [resolver](RateLimitLayerBuilder::resolver).
//! - **Keys** ([`key`]): peer IP, client IP behind trusted proxies (rightmost untrusted hop
//!   of `X-Forwarded-For` / `Forwarded`), a header, a request extension, a closure, or
//!   combinations. IPv6 is folded to /56.
//! - **Stores**: [`MemoryStore`] (default; bounded, self-cleaning) and [`RedisStore`]
//!   (standalone or Cluster; one `EVALSHA` per decision, Redis's clock, a TTL on every key,
//!   a local deny cache that answers refused keys with no round trip).
//! - **Responses**: `429` with `Retry-After`, IETF `RateLimit`/`RateLimit-Policy` fields
//!   and/or legacy `X-RateLimit-*` ([`HeaderStyle`]), a small `application/problem+json`
//!   body. Requests without a key get `400`, never a `500`.
//! - **Store failures**: a deadline per call and an explicit [`OnStoreError`] policy —
//!   fail open (default), fail closed (`503`), or fall back to a local limiter; a circuit
//!   breaker skips a dead Redis and probes it again every 200 ms.
//! - **Bans and allow lists** shared by every instance, and a programmatic API to read or
//!   reset a key ([`RateLimiter`]).
//!
//! It works on any `Service<http::Request<B>>`: axum `Router::layer` / `route_layer`,
//! `tower::ServiceBuilder` over a hyper `service_fn`, tonic. The inner service's error type
//! is kept, and responses built here use [`ResponseBody`], so no axum is needed.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use parapet_ratelimit::{Quota, RateLimitLayer, key::Global};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = RateLimitLayer::builder()
//!     .policy("second", Quota::per_second(2))
//!     .key(Global)
//!     .build()?;
//! let mut service = ServiceBuilder::new().layer(layer).service(service_fn(|_req: Request<String>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("hello")))
//! }));
//!
//! for expected in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
//!     let response = service.ready().await?.call(Request::new(String::new())).await?;
//!     assert_eq!(response.status(), expected);
//! }
//! # Ok(()) }
//! ```
//!
//! ## Metrics
//!
//! Through the `metrics` facade: [`DECISIONS`](metrics::DECISIONS)
//! (`parapet_ratelimit_decisions_total{policy,outcome}`),
//! [`LOCAL_DENIALS`](metrics::LOCAL_DENIALS), [`STORE_ERRORS`](metrics::STORE_ERRORS)
//! (`{kind,action}`) and the [`STORE_SECONDS`](metrics::STORE_SECONDS) histogram. Store
//! failures are also logged with `tracing` at `warn`.
//!
//! ## Crates we build on, and why
//!
//! - `sfv` serializes the IETF fields as RFC 9651 Structured Fields (quoting, ranges).
//! - `ipnet` matches trusted-proxy CIDR networks.
//! - `sha2` hashes subjects into Redis keys: API keys must not be stored in clear and every
//!   instance must compute the same key.
//! - `redis` (through `parapet-core`) runs the script: `Script` reloads it after `NOSCRIPT`.
//! - `X-Forwarded-For` / `Forwarded` are read by our own parser (`key/forwarded.rs`): the
//!   client key must come from the *right* end, lazily and with a hop limit, while the
//!   existing parser crate reads the whole header from the left.
//! - The in-process table is our own (`store/table.rs` says why a TTL cache crate does not
//!   fit: the expiry is the value itself, and one subject's entries change under one lock).

mod body;
mod breaker;
mod builder;
mod decision;
mod deny_cache;
mod error;
mod future;
mod gcra;
mod header_style;
mod headers;
pub mod key;
mod layer;
mod limiter;
mod limiter_api;
pub mod metrics;
mod missing_key;
mod policy;
mod policy_set;
mod policy_state;
mod quota;
mod rejection;
mod request_head;
mod service;
mod store;
mod subject;

pub use body::ResponseBody;
pub use builder::RateLimitLayerBuilder;
pub use decision::{Decision, Outcome};
pub use error::RateLimitError;
pub use future::ResponseFuture;
pub use header_style::HeaderStyle;
pub use layer::RateLimitLayer;
pub use limiter::RateLimiter;
pub use missing_key::MissingKey;
pub use parapet_core::OnStoreError;
pub use policy::Policy;
pub use policy_set::PolicySet;
pub use policy_state::PolicyState;
pub use quota::Quota;
pub use rejection::{Rejection, RejectionKind};
pub use request_head::RequestHead;
pub use service::RateLimit;
pub use store::{MemoryStore, RateLimitStore, RedisStore, StoreCall};
pub use subject::Subject;
