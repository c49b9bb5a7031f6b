//! Who is on the other end: the TCP peer ([`PeerIp`]) or the client behind trusted proxies
//! ([`ClientIp`]).
//!
//! IPv6 addresses are folded to a prefix (default /56: one customer site, per RFC 6177 and
//! common ISP practice), and IPv4-mapped IPv6 addresses are read as IPv4, so one client is
//! one key whatever spelling its address arrives in.
//!
//! The proxy chain parser is our own (`forwarded.rs`): the client address must come from
//! the *right* end, lazily, byte by byte and with a hop limit, while the parser crates we
//! looked at read the whole header from the left and reject it whole on one bad byte.
//! CIDR matching uses `ipnet`.

mod client;
mod forwarded;
mod forwarded_header;
mod peer_ip;

use std::net::{IpAddr, Ipv6Addr};

pub use client::ClientIp;
pub use forwarded::forwarded_pairs;
pub use forwarded_header::ForwardedHeader;
pub use peer_ip::PeerIp;

/// The default IPv6 prefix length addresses are folded to.
pub const DEFAULT_IPV6_PREFIX: u8 = 56;

/// Why a request has no client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientIpError {
    /// The server put no peer address in the request's extensions: a misconfiguration of
    /// the server (answer 500 and fix it), never the client's fault.
    #[error(
        "the request carries no peer address: serve axum with \
         into_make_service_with_connect_info::<SocketAddr>() (feature `axum`), insert the \
         SocketAddr into the extensions in a hyper service, or enable feature `tonic`"
    )]
    NoPeer,
    /// Where the client's address should be, the header holds something else (`unknown`,
    /// garbage, two values): the client's doing (answer 400).
    #[error("the client address in the forwarding header is not an IP address")]
    BadHop,
}

/// IPv4-mapped addresses as IPv4; IPv6 cut to `prefix` bits.
pub fn fold(ip: IpAddr, prefix: u8) -> IpAddr {
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
