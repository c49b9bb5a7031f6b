//! The primary cache key (RFC 9111 §2, §4): method class, scheme, host, path, query, and
//! any custom parts, encoded so that no two different requests share one.

use bytes::Bytes;
use http::header::HOST;
use parapet_core::RequestHead;

use crate::QueryKey;

/// The primary key of a request: what every stored variant of one resource shares.
///
/// The canonical bytes are length-prefixed parts (method class, scheme, host, path, query,
/// custom parts), so no choice of values can make two different requests encode alike. A
/// store keeps these bytes with each entry and compares them on read: a hash collision can
/// never serve another resource.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    bytes: Bytes,
    scheme: (usize, usize),
    host: (usize, usize),
    path: (usize, usize),
}

impl CacheKey {
    /// The key of a `GET` or `HEAD` request for `host` + `path_and_query` (how a
    /// [`CacheHandle`](crate::CacheHandle) names a resource to invalidate). The query is
    /// taken as given: pass it as the cache normalises it.
    pub fn new(scheme: &str, host: &str, path_and_query: &str) -> Self {
        // The query part keeps its `?`: `/a?` and `/a` are different URIs (RFC 3986 §6.2.3
        // allows treating them alike only by scheme-specific rules).
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        Self::encode(scheme, host, path, query, &[])
    }

    /// The key of a request, or `None` when a custom key part declines it.
    pub(crate) fn of(
        head: &RequestHead<'_>,
        query: &QueryKey,
        parts: &[crate::KeyPart],
    ) -> Option<Self> {
        let uri = head.uri;
        let scheme = uri.scheme_str().unwrap_or("http");
        let host = match uri.authority() {
            Some(authority) => authority.as_str(),
            None => head
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        };
        let query = uri.query().map(|q| query.normalise(q));
        let mut custom = Vec::with_capacity(parts.len());
        for part in parts {
            custom.push(part(head)?);
        }
        Some(Self::encode(
            scheme,
            host,
            uri.path(),
            query.as_deref(),
            &custom,
        ))
    }

    fn encode(
        scheme: &str,
        host: &str,
        path: &str,
        query: Option<&str>,
        custom: &[String],
    ) -> Self {
        let parts = [
            scheme.len(),
            host.len(),
            path.len(),
            query.map_or(0, |q| q.len() + 1),
        ];
        let len = 1
            + parts.iter().map(|n| n + 4).sum::<usize>()
            + custom.iter().map(|p| p.len() + 4).sum::<usize>();
        let mut bytes = Vec::with_capacity(len);
        // GET and HEAD share entries (a HEAD is answered from a stored GET); no other method
        // is ever stored, so one class byte is the whole method part.
        bytes.push(b'G');
        let mut put = |pieces: &[&[u8]], lowercase: bool| {
            let n: usize = pieces.iter().map(|p| p.len()).sum();
            bytes.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
            let start = bytes.len();
            for piece in pieces {
                bytes.extend_from_slice(piece);
            }
            if lowercase {
                bytes[start..].make_ascii_lowercase();
            }
            (start, bytes.len())
        };
        let scheme = put(&[scheme.as_bytes()], true);
        let host = put(&[host.as_bytes()], true);
        let path = put(&[path.as_bytes()], false);
        match query {
            Some(query) => put(&[b"?", query.as_bytes()], false),
            None => put(&[], false),
        };
        for part in custom {
            put(&[part.as_bytes()], false);
        }
        Self {
            bytes: Bytes::from(bytes),
            scheme,
            host,
            path,
        }
    }

    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The scheme, lowercased.
    pub fn scheme(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.scheme.0..self.scheme.1]).unwrap_or("")
    }

    /// The host, lowercased.
    pub fn host(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.host.0..self.host.1]).unwrap_or("")
    }

    /// The path.
    pub fn path(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.path.0..self.path.1]).unwrap_or("")
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheKey")
            .field("host", &self.host())
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cannot_run_into_each_other() {
        let a = CacheKey::new("http", "a.example", "/x?y");
        let b = CacheKey::new("http", "a.example", "/x?y");
        let c = CacheKey::new("http", "a.example/x", "?y");
        let d = CacheKey::new("http", "a.example", "/x%3Fy");
        assert_ne!(
            CacheKey::new("http", "a", "/x?"),
            CacheKey::new("http", "a", "/x")
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.host(), "a.example");
        assert_eq!(a.path(), "/x");
        assert_eq!(CacheKey::new("HTTP", "A.Example", "/x?y"), a);
    }
}
