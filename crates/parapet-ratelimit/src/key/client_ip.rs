//! The client's address behind trusted proxies.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::forwarded::hops_from_right;
use super::{DEFAULT_IPV6_PREFIX, ForwardedHeader, KeyExtractor, PeerIp, fold};
use crate::{RateLimitError, RequestHead, Subject};

/// Most trusted hops walked before giving up on a chain.
const MAX_HOPS: usize = 32;

/// The client's IP behind proxies you run: the **rightmost untrusted** address of the chain
/// `X-Forwarded-For` (or `Forwarded`) + TCP peer.
///
/// Everything left of that address was written by the client and is ignored, so a client
/// cannot choose its own key by sending a forged `X-Forwarded-For` (the mistake of taking
/// the leftmost entry). Trust is given either as the proxies' networks
/// ([`trusted_proxies`](Self::trusted_proxies)) or as the number of proxies in front of the
/// service ([`trusted_hops`](Self::trusted_hops)).
///
/// - A peer that is not trusted is the client, whatever the headers say.
/// - A chain of trusted hops only (a health check from the load balancer) gives the
///   leftmost of them.
/// - A hop that is not an IP address (`unknown`, garbage) where the client should be gives
///   no key: the request is answered `400` (or let through, per `MissingKey`).
/// - IPv4-mapped addresses are read as IPv4; IPv6 is folded to /56 by default.
///
/// ```
/// use parapet_ratelimit::key::{ClientIp, ForwardedHeader};
///
/// let behind_lb = ClientIp::trusted_proxies(["10.0.0.0/8", "fd00::/8"])?;
/// let behind_two = ClientIp::trusted_hops(2).header(ForwardedHeader::Forwarded);
/// # Ok::<(), parapet_ratelimit::RateLimitError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientIp {
    trust: Trust,
    header: ForwardedHeader,
    peer: PeerIp,
    ipv6_prefix: u8,
}

#[derive(Debug, Clone)]
enum Trust {
    Networks(Arc<[IpNet]>),
    Hops(usize),
}

impl ClientIp {
    /// Trusts the proxies in these networks (`10.0.0.0/8`, `2001:db8::/32`, or a single
    /// address). An entry that does not parse is an error.
    pub fn trusted_proxies<I, S>(networks: I) -> Result<Self, RateLimitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let networks = networks
            .into_iter()
            .map(|n| {
                let n = n.as_ref().trim();
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        RateLimitError::InvalidConfig(
                            "a trusted proxy is not a CIDR network or IP address",
                        )
                    })
            })
            .collect::<Result<Arc<[IpNet]>, _>>()?;
        Ok(Self::with(Trust::Networks(networks)))
    }

    /// Trusts the `count` proxies nearest to the service: the client is the `count`-th
    /// address from the right of the chain (0 = the TCP peer).
    pub fn trusted_hops(count: usize) -> Self {
        Self::with(Trust::Hops(count))
    }

    fn with(trust: Trust) -> Self {
        Self {
            trust,
            header: ForwardedHeader::default(),
            peer: PeerIp::new(),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// Which header carries the chain (default `X-Forwarded-For`).
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Where the TCP peer's address comes from (default: a `SocketAddr` extension; for
    /// axum, `PeerIp::from_extension::<ConnectInfo<SocketAddr>>()`).
    #[must_use]
    pub fn peer(mut self, peer: PeerIp) -> Self {
        self.peer = peer;
        self
    }

    /// How many leading bits of an IPv6 address form the key (default 56).
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The client's address, unfolded, or `None`.
    pub fn client(&self, head: &RequestHead<'_>) -> Option<IpAddr> {
        let peer = self.peer.peer(head.extensions)?;
        match &self.trust {
            Trust::Networks(networks) => {
                let trusted = |ip: IpAddr| networks.iter().any(|n| n.contains(&ip));
                if !trusted(peer) {
                    return Some(peer);
                }
                let mut leftmost = peer;
                let hops = hops_from_right(head.headers, self.header, MAX_HOPS + 1);
                for (i, hop) in hops.into_iter().enumerate() {
                    let ip = hop?.to_canonical();
                    if !trusted(ip) {
                        return Some(ip);
                    }
                    if i == MAX_HOPS {
                        return None;
                    }
                    leftmost = ip;
                }
                Some(leftmost)
            }
            Trust::Hops(0) => Some(peer),
            Trust::Hops(count) => {
                let hops = hops_from_right(head.headers, self.header, (*count).min(MAX_HOPS));
                match hops.len() {
                    0 => Some(peer),
                    // Fewer hops than proxies: the request skipped some; take the leftmost.
                    _ => hops.last().copied().flatten().map(|ip| ip.to_canonical()),
                }
            }
        }
    }
}

impl KeyExtractor for ClientIp {
    fn extract(&self, head: &RequestHead<'_>) -> Option<Subject> {
        self.client(head)
            .map(|ip| Subject::ip(fold(ip, self.ipv6_prefix)))
    }
}
