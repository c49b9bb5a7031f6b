//! The `Cache-Status` field (RFC 9211): what this cache did with a request.

use http::HeaderValue;
use smallvec::SmallVec;

/// Why the request went forward (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forward {
    /// Not cached at all (a configuration or override said so, or an unkeyed header).
    Bypass,
    /// The method is not cacheable.
    Method,
    /// Nothing stored for the URI.
    UriMiss,
    /// Stored variants, none for this request.
    VaryMiss,
    /// The stored response was stale.
    Stale,
    /// The request asked for it (`no-cache`, `max-age=0`, `min-fresh`).
    Request,
}

impl Forward {
    fn token(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Method => "method",
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Stale => "stale",
            Self::Request => "request",
        }
    }
}

/// One `Cache-Status` member for this cache.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CacheStatus {
    pub hit: bool,
    pub fwd: Option<Forward>,
    pub fwd_status: Option<u16>,
    /// Remaining freshness in seconds; negative when stale.
    pub ttl: Option<i64>,
    pub stored: bool,
    pub collapsed: bool,
    /// A token saying more (`stale-while-revalidate`, `too-big`, …).
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    pub(crate) fn hit(ttl: i64) -> Self {
        Self {
            hit: true,
            ttl: Some(ttl),
            ..Self::default()
        }
    }

    pub(crate) fn forward(fwd: Forward) -> Self {
        Self {
            fwd: Some(fwd),
            ..Self::default()
        }
    }

    pub(crate) fn detail(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The field value: `parapet` and its parameters, in the grammar of RFC 8941 §3.1.2.
    pub(crate) fn to_header(self) -> HeaderValue {
        // Written on the stack (the longest member this cache writes is 117 bytes: every
        // parameter, a five-digit status, the longest detail) and copied once into the value.
        let mut out = SmallVec::<[u8; 128]>::new();
        out.extend_from_slice(b"parapet");
        if self.hit {
            out.extend_from_slice(b"; hit");
        }
        if let Some(fwd) = self.fwd {
            out.extend_from_slice(b"; fwd=");
            out.extend_from_slice(fwd.token().as_bytes());
        }
        let mut buf = itoa::Buffer::new();
        if let Some(status) = self.fwd_status {
            out.extend_from_slice(b"; fwd-status=");
            out.extend_from_slice(buf.format(status).as_bytes());
        }
        if let Some(ttl) = self.ttl {
            out.extend_from_slice(b"; ttl=");
            // sf-integer has at most 15 digits.
            let ttl = ttl.clamp(-999_999_999_999_999, 999_999_999_999_999);
            out.extend_from_slice(buf.format(ttl).as_bytes());
        }
        if self.stored {
            out.extend_from_slice(b"; stored");
        }
        if self.collapsed {
            out.extend_from_slice(b"; collapsed");
        }
        if let Some(detail) = self.detail {
            out.extend_from_slice(b"; detail=");
            out.extend_from_slice(detail.as_bytes());
        }
        HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("parapet"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_member_is_written_whole() {
        let status = CacheStatus {
            hit: true,
            fwd: Some(Forward::VaryMiss),
            fwd_status: Some(504),
            ttl: Some(i64::MIN),
            stored: true,
            collapsed: true,
            detail: Some("stale-while-revalidate"),
        };
        assert_eq!(
            status.to_header(),
            "parapet; hit; fwd=vary-miss; fwd-status=504; ttl=-999999999999999; stored; \
             collapsed; detail=stale-while-revalidate"
        );
        assert_eq!(CacheStatus::hit(42).to_header(), "parapet; hit; ttl=42");
    }
}
