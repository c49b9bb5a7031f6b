//! Who a request is charged to: [`KeyExtractor`] and the extractors that come with the crate.
//!
//! | extractor | key | when absent |
//! |---|---|---|
//! | [`PeerIp`] (default) | the TCP peer's IP | no peer address: the server's misconfiguration, `500` |
//! | [`ClientIp`] | the rightmost untrusted hop of `X-Forwarded-For` / `Forwarded`, or a trusted edge's `X-Real-IP`, `CF-Connecting-IP`, … | a garbage hop where the client should be |
//! | [`HeaderKey`] | one header's value (an API key) | header missing, empty, repeated or too long |
//! | [`ExtensionKey`] | a value an earlier layer put in the extensions (a user id) | not set |
//! | [`Global`] | one key for everyone | never |
//! | a closure `Fn(&RequestHead) -> Option<Subject>` | anything | `None` |
//!
//! Combine them with [`KeyExtractor::or`] (fall back) and [`KeyExtractor::and`] (both).
//! IPv6 addresses are folded to a prefix (default /56: one customer site, per RFC 6177 and
//! common ISP practice), and IPv4-mapped IPv6 addresses are read as IPv4. To ban or allow an
//! address, use [`Subject::ip`] (default folding) or the extractor's own `subject(ip)`.
//!
//! A request whose key is absent gets `400` (or passes, per [`MissingKey`](crate::MissingKey)).
//! A request without a peer address is different: the server did not say who connected, a
//! misconfiguration no client can cause or fix. It gets `500`, and one error is logged that
//! names the fix.

mod and;
mod extension;
mod global;
mod header;
mod ip;
mod or;

pub use and::And;
pub use extension::ExtensionKey;
pub use global::Global;
pub use header::HeaderKey;
pub use or::Or;
pub use parapet_core::address::DEFAULT_IPV6_PREFIX;
pub use parapet_core::{ClientIp, ForwardedHeader, PeerIp};

use crate::{RequestHead, Subject};

/// Why a key extractor found no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoKey {
    /// The request carries no key: the client's doing (`400`, or let through per
    /// `MissingKey`).
    Absent,
    /// Where a key must be, the request carries something unusable (a forwarding header
    /// whose client hop is garbage): always `400`, even with `MissingKey::Skip`, so that a
    /// client cannot turn a malformed header into a pass.
    Malformed,
    /// The server is set up wrong (no peer address in the extensions): `500`, logged once
    /// with this text, which names the fix.
    Misconfigured(&'static str),
}

/// Finds the [`Subject`] a request is charged to.
pub trait KeyExtractor: Send + Sync + 'static {
    /// The subject, or why there is none.
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey>;

    /// The subject `ip` is counted under, if this key is an IP address alone (folded with the
    /// key's own prefix); `None` otherwise. Used to ban or allow an address.
    fn ip_subject(&self, ip: std::net::IpAddr) -> Option<Subject> {
        let _ = ip;
        None
    }

    /// This key, or `other` when this one is absent. A misconfiguration or a malformed key
    /// is not hidden by the fallback.
    fn or<K: KeyExtractor>(self, other: K) -> Or<Self, K>
    where
        Self: Sized,
    {
        Or::new(self, other)
    }

    /// Both keys together (a user on an IP); absent if either is.
    fn and<K: KeyExtractor>(self, other: K) -> And<Self, K>
    where
        Self: Sized,
    {
        And::new(self, other)
    }
}

impl<F> KeyExtractor for F
where
    F: Fn(&RequestHead<'_>) -> Option<Subject> + Send + Sync + 'static,
{
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        self(head).ok_or(NoKey::Absent)
    }
}
