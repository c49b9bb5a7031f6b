//! The TCP peer's address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;

use http::Extensions;

use super::{DEFAULT_IPV6_PREFIX, KeyExtractor, fold};
use crate::{RequestHead, Subject};

/// The IP address of the TCP peer: right when clients connect directly, wrong behind a
/// proxy or load balancer (every request would share the proxy's key: use [`ClientIp`]).
///
/// The address is read from the request's extensions. By default a [`SocketAddr`] is looked
/// for, which is what a plain hyper server inserts (see `examples/hyper_ratelimit.rs`). With
/// axum, serve with `into_make_service_with_connect_info::<SocketAddr>()` and read axum's
/// `ConnectInfo` (no axum dependency is needed here, any `Deref<Target = SocketAddr>` works):
///
/// ```
/// use std::net::SocketAddr;
/// use axum::extract::ConnectInfo;
/// use parapet_ratelimit::key::PeerIp;
///
/// let key = PeerIp::from_extension::<ConnectInfo<SocketAddr>>();
/// ```
///
/// [`ClientIp`]: super::ClientIp
#[derive(Clone, Copy)]
pub struct PeerIp {
    lookup: fn(&Extensions) -> Option<IpAddr>,
    ipv6_prefix: u8,
}

impl PeerIp {
    /// The peer from a `SocketAddr` extension; IPv6 folded to /56.
    pub fn new() -> Self {
        Self {
            lookup: |extensions| extensions.get::<SocketAddr>().map(SocketAddr::ip),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// The peer from an extension of type `E` that derefs to a `SocketAddr`, such as axum's
    /// `ConnectInfo<SocketAddr>`.
    pub fn from_extension<E>() -> Self
    where
        E: Deref<Target = SocketAddr> + Send + Sync + 'static,
    {
        Self {
            lookup: |extensions| extensions.get::<E>().map(|e| e.ip()),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// How many leading bits of an IPv6 address form the key (default 56; 128 = the whole
    /// address). Values above 128 mean 128.
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The peer's address, IPv4-mapped addresses unwrapped, not folded.
    pub(crate) fn peer(&self, extensions: &Extensions) -> Option<IpAddr> {
        (self.lookup)(extensions).map(|ip| ip.to_canonical())
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

impl KeyExtractor for PeerIp {
    fn extract(&self, head: &RequestHead<'_>) -> Option<Subject> {
        let ip = self.peer(head.extensions)?;
        Some(Subject::ip(fold(ip, self.ipv6_prefix)))
    }
}
