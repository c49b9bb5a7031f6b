//! A tower rate-limit layer: exact, distributed, and cheap.
//!
//! - **Algorithm**: GCRA in integer microseconds — a rate per period plus a burst, weighted
//!   costs, no window-edge bursts, exact `Retry-After` (a client that waits it is admitted).
//!   Per policy, a strict sliding window or an epoch-aligned fixed window instead
//!   ([`Algorithm`] compares what each means to a client).
//!   Refusals write nothing.
//! - **Several policies per request** (100/minute *and* 1000/hour), charged all or nothing;
//!   per-route policies with `route_layer` or a [resolver](RateLimitLayerBuilder::resolver).
//! - **Keys** ([`key`]): peer IP, client IP behind trusted proxies (read from the right, so
//!   a client cannot choose its own key), a header, a request extension, a closure, or
//!   combinations. IPv6 is folded to /56.
//! - **Stores**: [`MemoryStore`] (default; bounded, self-cleaning, bans never evicted) and
//!   [`RedisStore`] (standalone or Cluster; one `EVALSHA` per decision at most, as
//!   decisions that arrive together share one; Redis's clock, a TTL on every key, keyed
//!   hashes with a secret, a local deny cache that answers refused keys with no round trip).
//! - **Responses**: `429` with `Retry-After`, IETF `RateLimit`/`RateLimit-Policy` fields
//!   and/or legacy `X-RateLimit-*` ([`HeaderStyle`]), a small `application/problem+json`
//!   body. Requests without a key get `400`; a server that gives no peer address gets `500`
//!   and one log line that names the fix.
//! - **Store failures**: a deadline per call and an explicit [`OnStoreError`] policy —
//!   fall back to a local limiter (default), fail closed (`503`), or fail open; a circuit
//!   breaker skips a dead Redis and sends one probe every 200 ms.
//! - **Bans and allow lists** shared by every instance, and a programmatic API to read or
//!   reset a key ([`RateLimiter`]).
//!
//! It works on any `Service<http::Request<B>>`: axum `Router::layer` / `route_layer`,
//! `tower::ServiceBuilder` over a hyper `service_fn`, tonic. The inner service's error type
//! is kept, and responses built here use [`ResponseBody`], so no axum is needed.
//!
//! On axum, with feature `axum`, the default key reads the `ConnectInfo` that
//! `into_make_service_with_connect_info` provides:
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::{Router, routing::get};
//! use parapet_ratelimit::{Quota, RateLimitLayer};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limit = RateLimitLayer::builder()
//!     .policy("second", Quota::per_second(2))
//!     .build()?;
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(limit);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<SocketAddr>(),
//! ).into_future());
//!
//! for expected in ["200", "200", "429"] {
//!     let mut stream = tokio::net::TcpStream::connect(addr).await?;
//!     stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
//!     let mut response = String::new();
//!     stream.read_to_string(&mut response).await?;
//!     assert_eq!(&response[9..12], expected, "{response}");
//! }
//! # Ok(()) }
//! ```
//!
//! The same layer over a plain hyper or tower service:
//!
//! ```
//! use std::convert::Infallible;
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
//! Through the `metrics` facade, named in [`metrics`]: [`DECISIONS`](metrics::DECISIONS)
//! (`parapet_ratelimit_decisions_total{policy,outcome}`),
//! [`LOCAL_DENIALS`](metrics::LOCAL_DENIALS), [`STORE_ERRORS`](metrics::STORE_ERRORS)
//! (`{kind,action}`), the [`STORE_SECONDS`](metrics::STORE_SECONDS) histogram,
//! [`MEMORY_EVICTIONS`](metrics::MEMORY_EVICTIONS), [`MEMORY_REFUSALS`](metrics::MEMORY_REFUSALS)
//! and [`REFUNDS`](metrics::REFUNDS). Store failures are logged with `tracing` at `warn`: the
//! first with its cause, then one summary every 10 seconds.
//!
//! ## Crates we build on, and why
//!
//! - `sfv` serializes the IETF fields as RFC 9651 Structured Fields (quoting, ranges).
//! - `parapet-core` holds what the other parapet middlewares share: the Redis handle, client
//!   IP extraction (our own right-to-left parser, `ipnet` for CIDRs), the breaker, the
//!   bounded table, keyed hashing (`sha2`, `hmac`), problem responses.
//! - `sha2` derives stable policy ids.
//! - The in-process table is `parapet_core::table` (its docs say why a TTL cache crate does
//!   not fit: the expiry is the value itself, and one subject's entries change under one
//!   lock, all or nothing).
//!
//! ## Source layout
//!
//! `request/` (layer, service, future, limiter, builder, deny cache), `limits/` (quotas,
//! policies, GCRA, decisions), `store/` (memory, Redis and its Lua), `key/` (extractors),
//! `response/` (refusals and rate-limit fields).

mod error;
pub mod key;
mod limits;
pub mod metrics;
mod request;
mod response;
mod store;

pub use error::RateLimitError;
pub use limits::algorithm::Algorithm;
pub use limits::decision::{Decision, Outcome};
pub use limits::policy::Policy;
pub use limits::policy_set::PolicySet;
pub use limits::policy_state::PolicyState;
pub use limits::quota::Quota;
pub use parapet_core::{OnStoreError, RequestHead, ResponseBody, StoreCall, Subject};
pub use request::builder::RateLimitLayerBuilder;
pub use request::future::ResponseFuture;
pub use request::layer::RateLimitLayer;
pub use request::limiter::RateLimiter;
pub use request::missing_key::MissingKey;
pub use request::service::RateLimit;
pub use response::header_style::HeaderStyle;
pub use response::rejection::{Rejection, RejectionKind};
pub use store::{HotKeyStore, MemoryStore, RateLimitStore, RedisStore, WhenFull};

// Crate-internal paths.
use limits::gcra;
use response::headers;
