//! The response header fields that tell one request's rate-limit decision. They are about
//! that request alone: the rate limiter writes them, and the response cache never stores
//! them (a hit would replay another request's decision).
//!
//! The IETF fields follow draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` (§3) and
//! `RateLimit` (§4) are Structured Field Lists (RFC 9651 §3.1), so nested limiters each
//! append their own items, and a recipient reads every field line as one list.

use http::HeaderName;

/// `RateLimit`: each policy's remaining quota and reset.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Policy`: each policy's quota and window.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `X-RateLimit-Limit` (the older, unstandardized style).
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`.
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Every per-request decision field: what a shared cache strips before storing. A limiter's
/// `Retry-After` comes only on its refusals (429, 503), which are never stored.
pub const ALL: [HeaderName; 5] = [
    RATELIMIT,
    RATELIMIT_POLICY,
    X_RATELIMIT_LIMIT,
    X_RATELIMIT_REMAINING,
    X_RATELIMIT_RESET,
];
