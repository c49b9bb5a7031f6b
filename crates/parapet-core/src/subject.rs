//! Who a request belongs to, as the stores see it.

use std::fmt;
use std::net::IpAddr;

use crate::address::{DEFAULT_IPV6_PREFIX, fold};

/// A key a middleware keeps state under: an IP, an API key, a user id, or several of them.
///
/// Each part is stored with its kind and its length, so `("ip", "1.2.3.4")` never equals
/// `("header", "1.2.3.4")` and composite keys cannot be forged by choosing where a value
/// ends. A subject is never printed or stored in clear: `Debug` shows a fingerprint only,
/// and Redis keys hold a hash of it (see [`Keyspace`](crate::Keyspace)).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    bytes: Vec<u8>,
}

impl Subject {
    /// A subject of one part: `kind` names where the value came from (`"ip"`, `"api-key"`).
    pub fn new(kind: &str, value: impl AsRef<[u8]>) -> Self {
        let mut subject = Self { bytes: Vec::new() };
        subject.push(kind, value.as_ref());
        subject
    }

    /// The subject of an IP address, folded exactly as the IP key extractors fold it with
    /// their default: IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is read as IPv4, and IPv6 is
    /// cut to its /56 prefix. So `Subject::ip` of any spelling of a client's address is the
    /// subject its requests are counted under.
    pub fn ip(ip: IpAddr) -> Self {
        Self::ip_prefix(ip, DEFAULT_IPV6_PREFIX)
    }

    /// The subject of an IP address with IPv6 cut to `ipv6_prefix` bits: for extractors
    /// configured with another prefix than the default /56.
    pub fn ip_prefix(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match fold(ip, ipv6_prefix) {
            IpAddr::V4(v4) => Self::new("ip", v4.octets()),
            IpAddr::V6(v6) => Self::new("ip", v6.octets()),
        }
    }

    /// This subject followed by `other`: both must match for two subjects to be equal.
    #[must_use]
    pub fn and(mut self, other: &Subject) -> Self {
        self.bytes.extend_from_slice(&other.bytes);
        self
    }

    fn push(&mut self, kind: &str, value: &[u8]) {
        let kind = &kind.as_bytes()[..kind.len().min(255)];
        self.bytes.push(kind.len() as u8); // at most 255 by the slice above
        self.bytes.extend_from_slice(kind);
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&value[..len as usize]);
    }

    /// The unambiguous encoding (kind and length before each part) that stores hash. Keep
    /// it out of logs and keys in clear: it may hold an API key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An unkeyed fingerprint would let a log reader enumerate IPs: show the length only.
        write!(f, "Subject({} bytes)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_boundaries_do_not_collide() {
        assert_ne!(Subject::new("ip", "1"), Subject::new("key", "1"));
        let ab_c = Subject::new("k", "ab").and(&Subject::new("k", "c"));
        let a_bc = Subject::new("k", "a").and(&Subject::new("k", "bc"));
        assert_ne!(ab_c, a_bc);
    }

    #[test]
    fn every_spelling_of_an_address_is_one_subject() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            Subject::ip(ip("::ffff:192.0.2.1")),
            Subject::ip(ip("192.0.2.1"))
        );
        assert_eq!(
            Subject::ip(ip("2001:db8:aa:bb01::1")),
            Subject::ip(ip("2001:db8:aa:bbff:ffff::9"))
        );
        assert_ne!(
            Subject::ip(ip("2001:db8:aa:bb01::1")),
            Subject::ip(ip("2001:db8:aa:cc01::1"))
        );
        assert_ne!(
            Subject::ip_prefix(ip("2001:db8::1"), 128),
            Subject::ip_prefix(ip("2001:db8::2"), 128)
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Subject::new("api-key", "secret-token-123");
        assert!(!format!("{s:?}").contains("secret"));
    }
}
