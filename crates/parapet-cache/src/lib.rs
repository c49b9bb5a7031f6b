//! The parapet response-cache layer — under construction.
//!
//! This crate will hold `CacheLayer`: an RFC 9111 shared cache as a tower layer, in memory,
//! on Redis or both. What is here today is its [`policy`] core, the RFC's rules as pure,
//! tested functions:
//!
//! - [`policy::CacheControl`]: `Cache-Control` parsing that never fails. Unknown directives
//!   are ignored; a repeated or malformed freshness directive makes the response stale; a
//!   line that cannot be read counts as `no-store`.
//! - [`policy::freshness_lifetime`] (`s-maxage` > `max-age` > `Expires` > heuristic, §4.2.1,
//!   §4.2.2) and [`policy::current_age`] (§4.2.3).
//! - [`policy::storability`]: §3 and §3.5 for a shared cache, plus parapet's safety defaults
//!   (no `Set-Cookie`, no server errors, no `private` at all, no `Vary: *`).
//!
//! HTTP dates are parsed by `httpdate` (RFC 9110 §5.6.7, all three formats).
//! `Cache-Control` is parsed here rather than with the `headers` crate's typed
//! `CacheControl`: that type fails the whole field on one malformed directive (which would
//! lose a `private` next to it), and has neither the field-name forms of `no-cache` and
//! `private` nor RFC 5861's `stale-while-revalidate` and `stale-if-error`, which this layer
//! needs.

pub mod policy;
