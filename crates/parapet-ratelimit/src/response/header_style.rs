//! Which rate-limit header fields responses carry.

/// Which rate-limit header fields to add to responses (admitted and refused alike).
///
/// A refused request always carries `Retry-After` (whole seconds, rounded up, at least 1),
/// whatever the style.
///
/// The default is [`None`](Self::None): every field is work for the server and every
/// client on every response (measured in `BENCHMARKS.md`: two short fields cost a hello-world
/// service about a tenth of its throughput), and it tells callers your quotas. Turn them on
/// for APIs whose clients pace themselves: `.headers(HeaderStyle::Ietf)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// `RateLimit-Policy` and `RateLimit` as in draft-ietf-httpapi-ratelimit-headers (-08
    /// and later, the named-policy form), serialized as Structured Fields (RFC 9651):
    /// `RateLimit-Policy: "minute";q=100;w=60` and `RateLimit: "minute";r=42;t=35`, one item
    /// per policy.
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (delta seconds)
    /// of the most constrained policy, as many existing clients expect.
    Legacy,
    /// Both of the above.
    Both,
    /// No rate-limit fields (refusals still carry `Retry-After`). The default.
    #[default]
    None,
}

impl HeaderStyle {
    pub(crate) fn ietf(self) -> bool {
        matches!(self, Self::Ietf | Self::Both)
    }

    pub(crate) fn legacy(self) -> bool {
        matches!(self, Self::Legacy | Self::Both)
    }
}
