//! Which header carries the client's address.

use http::HeaderName;

use super::forwarded::{Syntax, X_FORWARDED_FOR};

/// The header [`ClientIp`](super::ClientIp) reads the client's address from.
///
/// Chains (`X-Forwarded-For`, `Forwarded`) are read from the right, hop by hop. The
/// single-address headers are set by one edge (a CDN, a platform's router) that replaces
/// whatever the client sent: they are read only when the TCP peer is trusted, and must hold
/// exactly one address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de facto standard). The default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
    /// `X-Real-IP` (nginx's `proxy_set_header X-Real-IP $remote_addr`).
    XRealIp,
    /// `CF-Connecting-IP` (Cloudflare).
    CfConnectingIp,
    /// `True-Client-IP` (Akamai, Cloudflare Enterprise).
    TrueClientIp,
    /// `Fly-Client-IP` (Fly.io).
    FlyClientIp,
    /// Another single-address header set by your edge.
    Single(HeaderName),
}

/// How a header is read.
pub(crate) enum Reading {
    Chain(Syntax),
    Single(HeaderName),
}

impl ForwardedHeader {
    /// `x-forwarded-for`, `forwarded`, or a single-address header's name, as configuration
    /// text (the examples' `FORWARDED_HEADER`). Case does not matter.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        Some(match name.as_str() {
            "x-forwarded-for" => Self::XForwardedFor,
            "forwarded" => Self::Forwarded,
            "x-real-ip" => Self::XRealIp,
            "cf-connecting-ip" => Self::CfConnectingIp,
            "true-client-ip" => Self::TrueClientIp,
            "fly-client-ip" => Self::FlyClientIp,
            _ => return None,
        })
    }

    pub(crate) fn reading(&self) -> Reading {
        let single = |name: &'static str| Reading::Single(HeaderName::from_static(name));
        match self {
            Self::XForwardedFor => Reading::Chain(Syntax::Bare),
            Self::Forwarded => Reading::Chain(Syntax::Forwarded),
            Self::XRealIp => single("x-real-ip"),
            Self::CfConnectingIp => single("cf-connecting-ip"),
            Self::TrueClientIp => single("true-client-ip"),
            Self::FlyClientIp => single("fly-client-ip"),
            Self::Single(name) if *name == X_FORWARDED_FOR => Reading::Chain(Syntax::Bare),
            Self::Single(name) => Reading::Single(name.clone()),
        }
    }
}
