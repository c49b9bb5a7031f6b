//! The TCP peer's address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;

use http::Extensions;

use super::{ClientIpError, DEFAULT_IPV6_PREFIX, fold};
use crate::{RequestHead, Subject};

/// The IP address of the TCP peer: right when clients connect directly, wrong behind a
/// proxy or load balancer (every request would share the proxy's address: use
/// [`ClientIp`](super::ClientIp)).
///
/// [`PeerIp::new`] finds the address with no configuration wherever the server put it:
///
/// | server | extension | needs |
/// |---|---|---|
/// | plain hyper (`examples/hyper_ratelimit.rs`) | `SocketAddr` | — |
/// | axum, served `into_make_service_with_connect_info::<SocketAddr>()` | `ConnectInfo<SocketAddr>` | feature `axum` |
/// | tonic | `TcpConnectInfo` | feature `tonic` |
///
/// For anything else, [`from_extension`](Self::from_extension) reads any extension that
/// derefs to a `SocketAddr`. A request without the address is a server misconfiguration,
/// not the client's fault: [`ClientIpError::NoPeer`].
///
/// ```
/// use std::net::SocketAddr;
/// use http::Request;
/// use parapet_core::{PeerIp, RequestHead};
///
/// let mut request = Request::new(());
/// request.extensions_mut().insert("192.0.2.7:51000".parse::<SocketAddr>().unwrap());
/// let ip = PeerIp::new().ip(&RequestHead::of(&request)).unwrap();
/// assert_eq!(ip.to_string(), "192.0.2.7");
/// ```
#[derive(Clone, Copy)]
pub struct PeerIp {
    lookup: fn(&Extensions) -> Option<IpAddr>,
    ipv6_prefix: u8,
}

fn default_lookup(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(addr) = extensions.get::<SocketAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    #[cfg(feature = "tonic")]
    if let Some(info) = extensions.get::<tonic::transport::server::TcpConnectInfo>() {
        return info.remote_addr().map(|addr| addr.ip());
    }
    None
}

impl PeerIp {
    /// The peer from a `SocketAddr`, axum `ConnectInfo<SocketAddr>` (feature `axum`) or
    /// tonic `TcpConnectInfo` (feature `tonic`) extension; IPv6 folded to /56.
    pub fn new() -> Self {
        Self {
            lookup: default_lookup,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// The peer from an extension of type `E` that derefs to a `SocketAddr`.
    pub fn from_extension<E>() -> Self
    where
        E: Deref<Target = SocketAddr> + Send + Sync + 'static,
    {
        Self {
            lookup: |extensions| extensions.get::<E>().map(|e| e.ip()),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// How many leading bits of an IPv6 address identify a client (default 56; 128 = the
    /// whole address). Values above 128 mean 128.
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The configured IPv6 prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.ipv6_prefix
    }

    /// The peer's address, IPv4-mapped addresses unwrapped, not folded.
    pub fn peer(&self, extensions: &Extensions) -> Option<IpAddr> {
        (self.lookup)(extensions).map(|ip| ip.to_canonical())
    }

    /// The peer's address, folded (IPv4-mapped → IPv4, IPv6 → its prefix).
    pub fn ip(&self, head: &RequestHead<'_>) -> Result<IpAddr, ClientIpError> {
        let ip = self.peer(head.extensions).ok_or(ClientIpError::NoPeer)?;
        Ok(fold(ip, self.ipv6_prefix))
    }

    /// The subject of `ip` as this extractor folds it: what to ban or allow for it.
    pub fn subject(&self, ip: IpAddr) -> Subject {
        Subject::ip_prefix(ip, self.ipv6_prefix)
    }
}

impl Default for PeerIp {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PeerIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerIp")
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish()
    }
}
