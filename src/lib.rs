//! parapet: tower middleware for services that run on one instance or many.
//!
//! | module | what | status |
//! |---|---|---|
//! | [`ratelimit`] (feature `ratelimit`, default) | rate-limit layer: GCRA, several policies per request, memory or Redis | available |
//! | [`cache`] (feature `cache`, default) | response-cache layer: an RFC 9111 shared cache, memory or Redis | available |
//! | [`session`] (feature `session`, default) | session layer and extractor: field-by-field writes, per-user index, memory or Redis | available |
//! | [`jwt`] (feature `jwt`, default) | JWT guard: pinned keys, JWKS, revocation by token, user and epoch with zero round trips | available |
//!
//! [`core`] holds what they share: the Redis handle, store errors, the on-store-error policy.
//!
//! ```
//! use tower_parapet::ratelimit::{Quota, RateLimitLayer};
//!
//! let layer = RateLimitLayer::builder()
//!     .policy("minute", Quota::per_minute(100))
//!     .build()?;
//! # Ok::<(), tower_parapet::core::ConfigError>(())
//! ```

#[cfg(feature = "cache")]
pub use parapet_cache as cache;
pub use parapet_core as core;
#[cfg(feature = "jwt")]
pub use parapet_jwt as jwt;
#[cfg(feature = "ratelimit")]
pub use parapet_ratelimit as ratelimit;
#[cfg(feature = "session")]
pub use parapet_session as session;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
