//! The `Cache-Status` field (RFC 9211): what this cache did with a request.

use http::HeaderValue;

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
        let mut out = String::with_capacity(64);
        out.push_str("parapet");
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            out.push_str("; fwd=");
            out.push_str(fwd.token());
        }
        let mut buf = itoa::Buffer::new();
        if let Some(status) = self.fwd_status {
            out.push_str("; fwd-status=");
            out.push_str(buf.format(status));
        }
        if let Some(ttl) = self.ttl {
            out.push_str("; ttl=");
            // sf-integer has at most 15 digits.
            out.push_str(buf.format(ttl.clamp(-999_999_999_999_999, 999_999_999_999_999)));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(detail) = self.detail {
            out.push_str("; detail=");
            out.push_str(detail);
        }
        HeaderValue::try_from(out).unwrap_or(HeaderValue::from_static("parapet"))
    }
}
