//! The client's address behind trusted proxies.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::forwarded::{Hops, parse_node};
use super::forwarded_header::Reading;
use super::{ClientIpError, ForwardedHeader, PeerIp, fold};
use crate::{ConfigError, RequestHead, Subject};

/// Most trusted hops walked before giving up on a chain.
const MAX_HOPS: usize = 32;

/// The client's IP behind proxies you run: the **rightmost untrusted** address of the chain
/// `X-Forwarded-For` (or `Forwarded`) + TCP peer, or the address a trusted edge put in a
/// single-address header (`X-Real-IP`, `CF-Connecting-IP`, …).
///
/// Everything left of the first untrusted hop was written by the client and is never read,
/// so a client cannot choose its own address by sending a forged `X-Forwarded-For`, an open
/// quote in `Forwarded`, non-ASCII bytes or a huge header. Trust is given either as the
/// proxies' networks ([`trusted_proxies`](Self::trusted_proxies)) or as the number of
/// proxies in front of the service ([`trusted_hops`](Self::trusted_hops)).
///
/// - A peer that is not trusted is the client, whatever the headers say.
/// - A chain of trusted hops only (a health check from the load balancer) gives the
///   leftmost of them; so does a trusted peer that sent no chain at all.
/// - A hop that is not an IP address (`unknown`, garbage) where the client should be, a
///   single-address header sent twice or holding garbage: [`ClientIpError::BadHop`].
/// - IPv4-mapped addresses are read as IPv4; IPv6 is folded to /56 by default.
///
/// ```
/// use parapet_core::{ClientIp, ForwardedHeader};
///
/// let behind_lb = ClientIp::trusted_proxies(["10.0.0.0/8", "fd00::/8"])?;
/// let behind_two = ClientIp::trusted_hops(2).header(ForwardedHeader::Forwarded);
/// let behind_cdn = ClientIp::trusted_proxies(["173.245.48.0/20"])?
///     .header(ForwardedHeader::CfConnectingIp);
/// # Ok::<(), parapet_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientIp {
    trust: Trust,
    header: ForwardedHeader,
    peer: PeerIp,
}

#[derive(Debug, Clone)]
enum Trust {
    Networks(Arc<[IpNet]>),
    Hops(usize),
}

impl ClientIp {
    /// Trusts the proxies in these networks (`10.0.0.0/8`, `2001:db8::/32`, or a single
    /// address). An entry that does not parse is an error.
    pub fn trusted_proxies<I, S>(networks: I) -> Result<Self, ConfigError>
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
                        ConfigError(format!(
                            "trusted proxy {n:?} is not a CIDR network or IP address"
                        ))
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
        }
    }

    /// Which header carries the client's address (default `X-Forwarded-For`).
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Where the TCP peer's address comes from (default [`PeerIp::new`]).
    #[must_use]
    pub fn peer(mut self, peer: PeerIp) -> Self {
        self.peer = peer;
        self
    }

    /// How many leading bits of an IPv6 address identify a client (default 56).
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.peer = self.peer.ipv6_prefix(bits);
        self
    }

    /// The client's address, folded (IPv4-mapped → IPv4, IPv6 → its prefix).
    pub fn ip(&self, head: &RequestHead<'_>) -> Result<IpAddr, ClientIpError> {
        Ok(fold(self.client(head)?, self.peer.prefix_len()))
    }

    /// The subject of `ip` as this extractor folds it: what to ban or allow for it.
    pub fn subject(&self, ip: IpAddr) -> Subject {
        self.peer.subject(ip)
    }

    /// The client's address, unfolded.
    pub fn client(&self, head: &RequestHead<'_>) -> Result<IpAddr, ClientIpError> {
        let peer = self
            .peer
            .peer(head.extensions)
            .ok_or(ClientIpError::NoPeer)?;
        match self.header.reading() {
            Reading::Single(name) => {
                if !self.trusts_peer(peer) {
                    return Ok(peer);
                }
                let mut lines = head.headers.get_all(name).iter();
                match (lines.next(), lines.next()) {
                    (None, _) => Ok(peer),
                    (Some(line), None) => parse_node(line.as_bytes())
                        .map(|ip| ip.to_canonical())
                        .ok_or(ClientIpError::BadHop),
                    (Some(_), Some(_)) => Err(ClientIpError::BadHop),
                }
            }
            Reading::Chain(syntax) => {
                let hops = Hops::new(head.headers, syntax);
                match &self.trust {
                    Trust::Networks(networks) => from_networks(networks, peer, hops),
                    Trust::Hops(count) => from_count(*count, peer, hops),
                }
            }
        }
    }

    /// Whether the request came through one of the trusted proxies (its TCP peer is
    /// trusted): then the proxy wrote the forwarding fields it sets (`X-Forwarded-Proto`, …)
    /// over the client's. A request with no known peer is not.
    pub fn from_trusted_proxy(&self, head: &RequestHead<'_>) -> bool {
        self.peer
            .peer(head.extensions)
            .is_some_and(|peer| self.trusts_peer(peer))
    }

    fn trusts_peer(&self, peer: IpAddr) -> bool {
        match &self.trust {
            Trust::Networks(networks) => networks.iter().any(|n| n.contains(&peer)),
            Trust::Hops(count) => *count > 0,
        }
    }
}

/// The rightmost hop outside `networks`, the peer first.
fn from_networks(
    networks: &[IpNet],
    peer: IpAddr,
    hops: Hops<'_>,
) -> Result<IpAddr, ClientIpError> {
    let trusted = |ip: IpAddr| networks.iter().any(|n| n.contains(&ip));
    if !trusted(peer) {
        return Ok(peer);
    }
    let mut leftmost = peer;
    for (walked, hop) in hops.enumerate() {
        if walked == MAX_HOPS {
            return Err(ClientIpError::BadHop);
        }
        let ip = hop.ok_or(ClientIpError::BadHop)?.to_canonical();
        if !trusted(ip) {
            return Ok(ip);
        }
        leftmost = ip;
    }
    Ok(leftmost)
}

/// The `count`-th hop from the right (the peer is the 0th).
fn from_count(count: usize, peer: IpAddr, hops: Hops<'_>) -> Result<IpAddr, ClientIpError> {
    if count == 0 {
        return Ok(peer);
    }
    let mut last = None;
    for hop in hops.take(count.min(MAX_HOPS)) {
        last = Some(hop);
    }
    match last {
        None => Ok(peer),
        // Fewer hops than proxies: the request skipped some; the leftmost is what we have.
        Some(hop) => hop.map(|ip| ip.to_canonical()).ok_or(ClientIpError::BadHop),
    }
}
