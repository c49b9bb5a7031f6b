//! Conditional requests (RFC 9110 §13) answered from a stored response, and the header
//! update a `304` brings to a stored response (RFC 9111 §3.2, §4.3.4).

use std::time::SystemTime;

use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, DATE, ETAG, EXPIRES, HeaderName,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderValue};

/// Whether a client's `If-None-Match` / `If-Modified-Since` is satisfied by a stored
/// response with these headers, so the answer is `304 Not Modified` (RFC 9110 §13.2.2:
/// `If-None-Match` first, `If-Modified-Since` only without it).
pub(crate) fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
    if request.contains_key(IF_NONE_MATCH) {
        let Some(etag) = stored.get(ETAG).and_then(|e| e.to_str().ok()) else {
            return false;
        };
        return request
            .get_all(IF_NONE_MATCH)
            .iter()
            .any(|line| line.to_str().is_ok_and(|line| weak_match_any(line, etag)));
    }
    let Some(since) = single_date(request, &IF_MODIFIED_SINCE) else {
        return false;
    };
    // Without Last-Modified, the stored Date is the best the cache knows (RFC 9111 §4.3.2).
    let modified = single_date(stored, &LAST_MODIFIED).or_else(|| single_date(stored, &DATE));
    modified.is_some_and(|modified| modified <= since)
}

/// `*` or one entity-tag of the list equal to `etag` by the weak comparison of RFC 9110
/// §8.8.3.2 (opaque tags equal, `W/` ignored).
fn weak_match_any(list: &str, etag: &str) -> bool {
    let opaque = |tag: &str| {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        (tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')).then(|| tag.to_owned())
    };
    let Some(stored) = opaque(etag) else {
        return false;
    };
    list.trim() == "*"
        || list
            .split(',')
            .any(|tag| opaque(tag).as_deref() == Some(&*stored))
}

/// The one valid HTTP-date of field `name`, if it has exactly one.
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    crate::policy::single_date(headers, name).flatten()
}

/// The fields a `304` carries (RFC 9110 §15.4.5): those a `200` would have had among
/// these, and `Last-Modified` to guide caches downstream.
const NOT_MODIFIED_FIELDS: [HeaderName; 7] = [
    CACHE_CONTROL,
    CONTENT_LOCATION,
    DATE,
    ETAG,
    EXPIRES,
    VARY,
    LAST_MODIFIED,
];

/// The header fields of a `304` made from a stored response's.
pub(crate) fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(NOT_MODIFIED_FIELDS.len() + 2);
    for name in NOT_MODIFIED_FIELDS {
        for value in stored.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// Whether a `304` validates the stored response that was asked about (RFC 9111 §4.3.4):
/// with a strong `ETag` in the `304`, the stored one must be the same.
pub(crate) fn validates(not_modified: &HeaderMap, stored: &HeaderMap) -> bool {
    match not_modified.get(ETAG) {
        None => true,
        Some(new) => {
            let strong = |v: &HeaderValue| !v.as_bytes().starts_with(b"W/");
            match stored.get(ETAG) {
                Some(old) if strong(new) => old == new,
                Some(old) => old
                    .as_bytes()
                    .trim_ascii_start()
                    .ends_with(new.as_bytes().strip_prefix(b"W/").unwrap_or(new.as_bytes())),
                None => false,
            }
        }
    }
}

/// The stored headers updated by a `304` (RFC 9111 §3.2): every field of the `304`
/// replaces the stored one, except `Content-Length` and those the cache never stores.
pub(crate) fn updated(
    stored: &HeaderMap,
    not_modified: &HeaderMap,
    never: &[HeaderName],
) -> HeaderMap {
    let mut headers = stored.clone();
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in not_modified {
        if *name == CONTENT_LENGTH || never.contains(name) {
            continue;
        }
        if !replaced.contains(&name) {
            headers.remove(name);
            replaced.push(name);
        }
        headers.append(name.clone(), value.clone());
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let stored = map(&[("etag", "W/\"v1\"")]);
        assert!(not_modified(&map(&[("if-none-match", "\"v1\"")]), &stored));
        assert!(not_modified(
            &map(&[("if-none-match", "\"x\", W/\"v1\"")]),
            &stored
        ));
        assert!(not_modified(&map(&[("if-none-match", "*")]), &stored));
        assert!(!not_modified(&map(&[("if-none-match", "\"v2\"")]), &stored));
        assert!(!not_modified(
            &map(&[("if-none-match", "garbage")]),
            &stored
        ));
        assert!(!not_modified(
            &map(&[("if-none-match", "\"v1\"")]),
            &HeaderMap::new()
        ));
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        let stored = map(&[
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("etag", "\"a\""),
        ]);
        assert!(not_modified(
            &map(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            &stored
        ));
        assert!(!not_modified(
            &map(&[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")]),
            &stored
        ));
        assert!(!not_modified(
            &map(&[("if-modified-since", "not a date")]),
            &stored
        ));
        let both = map(&[
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("if-none-match", "\"b\""),
        ]);
        assert!(!not_modified(&both, &stored), "If-None-Match decides");
    }

    #[test]
    fn a_304_updates_all_but_content_length() {
        let stored = map(&[
            ("content-length", "5"),
            ("cache-control", "max-age=1"),
            ("x-a", "1"),
            ("x-a", "2"),
        ]);
        let fresh = map(&[
            ("content-length", "0"),
            ("cache-control", "max-age=60"),
            ("x-a", "3"),
            ("set-cookie", "a=b"),
        ]);
        let merged = updated(&stored, &fresh, &[http::header::SET_COOKIE]);
        assert_eq!(merged["content-length"], "5");
        assert_eq!(merged["cache-control"], "max-age=60");
        assert_eq!(merged.get_all("x-a").iter().collect::<Vec<_>>(), ["3"]);
        assert!(!merged.contains_key("set-cookie"));
    }

    #[test]
    fn a_304_with_another_strong_etag_validates_nothing() {
        let stored = map(&[("etag", "\"a\"")]);
        assert!(validates(&map(&[]), &stored));
        assert!(validates(&map(&[("etag", "\"a\"")]), &stored));
        assert!(!validates(&map(&[("etag", "\"b\"")]), &stored));
    }
}
