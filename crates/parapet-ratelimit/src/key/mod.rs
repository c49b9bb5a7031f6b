//! Who a request is charged to: [`KeyExtractor`] and the extractors that come with the crate.
//!
//! | extractor | key | when absent |
//! |---|---|---|
//! | [`PeerIp`] (default) | the TCP peer's IP | no connect info in the extensions |
//! | [`ClientIp`] | the rightmost untrusted hop of `X-Forwarded-For` / `Forwarded` | a garbage hop where the client should be |
//! | [`HeaderKey`] | one header's value (an API key) | header missing, empty, repeated or too long |
//! | [`ExtensionKey`] | a value an earlier layer put in the extensions (a user id) | not set |
//! | [`Global`] | one key for everyone | never |
//! | a closure `Fn(&RequestHead) -> Option<Subject>` | anything | `None` |
//!
//! Combine them with [`KeyExtractor::or`] (fall back) and [`KeyExtractor::and`] (both).
//! IPv6 addresses are folded to a prefix (default /56: one customer site, per RFC 6177 and
//! common ISP practice), and IPv4-mapped IPv6 addresses are read as IPv4.

mod and;
mod client_ip;
mod extension;
mod forwarded;
mod forwarded_header;
mod global;
mod header;
mod or;
mod peer_ip;

use std::net::{IpAddr, Ipv6Addr};

pub use and::And;
pub use client_ip::ClientIp;
pub use extension::ExtensionKey;
pub use forwarded_header::ForwardedHeader;
pub use global::Global;
pub use header::HeaderKey;
pub use or::Or;
pub use peer_ip::PeerIp;

use crate::{RequestHead, Subject};

/// The default IPv6 prefix length keys are folded to.
pub const DEFAULT_IPV6_PREFIX: u8 = 56;

/// Finds the [`Subject`] a request is charged to.
pub trait KeyExtractor: Send + Sync + 'static {
    /// The subject, or `None` when the request carries no usable key (the layer then
    /// answers `400` or lets it through, as configured by `MissingKey`).
    fn extract(&self, head: &RequestHead<'_>) -> Option<Subject>;

    /// This key, or `other` when this one is absent.
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
    fn extract(&self, head: &RequestHead<'_>) -> Option<Subject> {
        self(head)
    }
}

/// IPv4-mapped addresses as IPv4; IPv6 cut to `prefix` bits.
pub(crate) fn fold(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let prefix = u32::from(prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            fold(ip("2001:db8:aa:bbcc::1"), 56),
            ip("2001:db8:aa:bb00::")
        );
        assert_eq!(fold(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(fold(ip("2001:db8::1"), 0), ip("::"));
        assert_eq!(fold(ip("::ffff:192.0.2.7"), 56), ip("192.0.2.7"));
        assert_eq!(fold(ip("192.0.2.7"), 56), ip("192.0.2.7"));
    }
}
