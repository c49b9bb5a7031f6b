//! `Range` requests answered from a stored complete response (RFC 9110 §14): one range as
//! a `206` with `Content-Range`, several as `multipart/byteranges` (§14.6), none
//! satisfiable as `416` with `Content-Range: bytes */<length>`; `If-Range` (§13.1.5) sends
//! the whole response unless its validator is the stored one, compared strongly.
//!
//! A `Range` the cache cannot read (another unit, bad syntax, more than [`MAX_RANGES`]
//! ranges) is ignored, as §14.2 allows: the whole response is sent. Nothing partial is
//! ever stored: a range asked of a response not stored goes to the origin as sent.

use bytes::{Bytes, BytesMut};
use http::header::{
    CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, DATE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderValue, StatusCode};

/// The most ranges one request may ask for; more are ignored whole (many small or
/// overlapping ranges are a known way to make a server work, §14.1.1).
pub(crate) const MAX_RANGES: usize = 16;

/// What to send for a request's `Range` against a stored body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// Send the whole response (no `Range`, one to ignore, or `If-Range` failed).
    Whole,
    /// These inclusive byte ranges, in the order asked.
    Parts(Vec<(u64, u64)>),
    /// `416 Range Not Satisfiable`.
    Unsatisfiable,
}

/// Reads the request's `Range` (and `If-Range`) against a stored response.
pub(crate) fn ranged(request: &HeaderMap, stored: &HeaderMap, len: u64) -> Ranged {
    let mut lines = request.get_all(RANGE).iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Ranged::Whole;
    };
    if request.contains_key(IF_RANGE) && !if_range_holds(request, stored) {
        return Ranged::Whole;
    }
    let Some(specs) = line.to_str().ok().and_then(parse) else {
        return Ranged::Whole;
    };
    if len == 0 {
        // Nothing to take a range of: the (empty) whole (§14.1.1 reads a suffix range of
        // an empty representation as satisfiable by it).
        return Ranged::Whole;
    }
    let mut parts: Vec<(u64, u64)> = specs
        .into_iter()
        .filter_map(|spec| spec.resolve(len))
        .collect();
    if parts.is_empty() {
        return Ranged::Unsatisfiable;
    }
    // Overlapping or adjacent ranges are merged (§14.2 allows it), so the parts never add
    // up to more than the body: `bytes=0-,0-,…` does not make a 16-fold answer.
    if parts.len() > 1 {
        parts.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(parts.len());
        for (first, last) in parts {
            match merged.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        parts = merged;
    }
    if let [(0, last)] = parts.as_slice()
        && *last == len - 1
    {
        return Ranged::Whole;
    }
    Ranged::Parts(parts)
}

/// §13.1.5: `If-Range` holds when it is the stored strong entity-tag, or an HTTP-date equal
/// to the stored `Last-Modified` (a weak tag never holds).
fn if_range_holds(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let mut lines = request.get_all(IF_RANGE).iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return false;
    };
    let Ok(value) = line.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') {
        return stored
            .get(ETAG)
            .and_then(|e| e.to_str().ok())
            .is_some_and(|etag| etag.trim() == value && value.len() >= 2 && value.ends_with('"'));
    }
    if value.starts_with("W/") {
        return false;
    }
    let date = |name| {
        stored
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    // A date is a strong validator only when the response was made at least a second
    // after it (§8.8.2.2): two changes within that second share the date.
    match (
        httpdate::parse_http_date(value),
        date(LAST_MODIFIED),
        date(DATE),
    ) {
        (Ok(asked), Some(modified), Some(made)) => {
            asked == modified
                && made
                    .duration_since(modified)
                    .is_ok_and(|d| d >= std::time::Duration::from_secs(1))
        }
        _ => false,
    }
}

/// One range as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    From(u64, Option<u64>),
    /// `-suffix`: the last bytes.
    Last(u64),
}

impl Spec {
    /// The inclusive range within a body of `len` bytes, if any of it is there.
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            Spec::From(first, _) if first >= len => None,
            Spec::From(first, last) => Some((first, last.map_or(len - 1, |l| l.min(len - 1)))),
            Spec::Last(0) => None,
            Spec::Last(_) if len == 0 => None,
            Spec::Last(n) => Some((len.saturating_sub(n), len - 1)),
        }
    }
}

/// `bytes=<spec>, <spec>…` (§14.1.2: the unit case-insensitive, optional whitespace around
/// commas); `None` for anything else.
fn parse(value: &str) -> Option<Vec<Spec>> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for part in set.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGES {
            return None;
        }
        let (first, last) = part.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let spec = match (first.is_empty(), last.is_empty()) {
            (true, false) => Spec::Last(number(last)?),
            (false, true) => Spec::From(number(first)?, None),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return None;
                }
                Spec::From(first, Some(last))
            }
            (true, true) => return None,
        };
        specs.push(spec);
    }
    (!specs.is_empty()).then_some(specs)
}

/// The status, the header fields to set and the body of a ranged answer from `body` with
/// the stored `content_type`. Fields it sets replace the stored ones; the caller removes
/// none other.
pub(crate) fn answer(
    parts: &[(u64, u64)],
    body: &Bytes,
    content_type: Option<&HeaderValue>,
) -> (StatusCode, HeaderMap, Bytes) {
    let len = body.len() as u64;
    let mut headers = HeaderMap::new();
    if let [(first, last)] = parts {
        let slice = body.slice(*first as usize..=*last as usize);
        headers.insert(CONTENT_RANGE, content_range(*first, *last, len));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(slice.len() as u64));
        return (StatusCode::PARTIAL_CONTENT, headers, slice);
    }
    // A boundary of the body's own: the bytes it may not contain are the parts' (§14.6
    // asks only that it not occur in them); a random one does not occur in practice.
    let boundary = boundary();
    let mut out = BytesMut::new();
    for (first, last) in parts {
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(kind) = content_type {
            out.extend_from_slice(b"content-type: ");
            out.extend_from_slice(kind.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"content-range: ");
        out.extend_from_slice(content_range(*first, *last, len).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&body[*first as usize..=*last as usize]);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    let body = out.freeze();
    if let Ok(kind) = HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}")) {
        headers.insert(CONTENT_TYPE, kind);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
    (StatusCode::PARTIAL_CONTENT, headers, body)
}

/// `416`'s `Content-Range: bytes */<length>`.
pub(crate) fn unsatisfiable(len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes */{len}"))
        .unwrap_or(HeaderValue::from_static("bytes */0"))
}

fn content_range(first: u64, last: u64, len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes {first}-{last}/{len}"))
        .unwrap_or(HeaderValue::from_static("bytes */0"))
}

fn boundary() -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(0u8);
    let b = RandomState::new().hash_one(1u8);
    format!("parapet-{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("date", "Sun, 06 Nov 1994 08:49:38 GMT"),
        ]);
        let of = |range: &str| ranged(&headers(&[("range", range)]), &stored, 10);
        assert_eq!(of("bytes=2-4"), Ranged::Parts(vec![(2, 4)]));
        assert_eq!(of("BYTES = 2-4"), Ranged::Whole, "no space before '='");
        assert_eq!(of("Bytes=2-4"), Ranged::Parts(vec![(2, 4)]));
        assert_eq!(of("bytes=7-"), Ranged::Parts(vec![(7, 9)]));
        assert_eq!(of("bytes=-3"), Ranged::Parts(vec![(7, 9)]));
        assert_eq!(of("bytes=-30"), Ranged::Whole, "all of it: the whole");
        assert_eq!(of("bytes=1-30"), Ranged::Parts(vec![(1, 9)]));
        assert_eq!(of("bytes=8-100"), Ranged::Parts(vec![(8, 9)]));
        assert_eq!(of("bytes=0-1, 5-6"), Ranged::Parts(vec![(0, 1), (5, 6)]));
        assert_eq!(of("bytes=10-20"), Ranged::Unsatisfiable);
        assert_eq!(of("bytes=-0"), Ranged::Unsatisfiable);
        assert_eq!(of("bytes=10-20, 1-1"), Ranged::Parts(vec![(1, 1)]));
        // Overlapping and adjacent ranges merge; out of order they are sorted.
        assert_eq!(
            of("bytes=5-6, 0-1, 1-2, 3-3"),
            Ranged::Parts(vec![(0, 3), (5, 6)])
        );
        let flood = format!("bytes={}", vec!["1-"; MAX_RANGES].join(","));
        assert_eq!(of(&flood), Ranged::Parts(vec![(1, 9)]));
        assert_eq!(
            ranged(&headers(&[("range", "bytes=-5")]), &stored, 0),
            Ranged::Whole
        );
        for ignored in [
            "bytes=4-2",
            "bytes=a-b",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "0-1",
            "bytes=1-2-3",
        ] {
            assert_eq!(of(ignored), Ranged::Whole, "{ignored}");
        }
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(of(&many), Ranged::Whole, "too many ranges");
        // If-Range: the strong tag, or the date of Last-Modified.
        let with = |if_range: &str| {
            ranged(
                &headers(&[("range", "bytes=0-0"), ("if-range", if_range)]),
                &stored,
                10,
            )
        };
        assert_eq!(with("\"v1\""), Ranged::Parts(vec![(0, 0)]));
        assert_eq!(with("\"v2\""), Ranged::Whole);
        assert_eq!(with("W/\"v1\""), Ranged::Whole);
        assert_eq!(
            with("Sun, 06 Nov 1994 08:49:37 GMT"),
            Ranged::Parts(vec![(0, 0)])
        );
        assert_eq!(with("Sun, 06 Nov 1994 08:49:38 GMT"), Ranged::Whole);
        // A Last-Modified within a second of the response's Date is weak: no range on it.
        let weak = headers(&[
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let asked = headers(&[
            ("range", "bytes=0-0"),
            ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert_eq!(ranged(&asked, &weak, 10), Ranged::Whole);
        // Two Range lines: ignored.
        let two = headers(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]);
        assert_eq!(ranged(&two, &stored, 10), Ranged::Whole);
    }

    #[test]
    fn several_ranges_make_a_multipart_body() {
        let body = Bytes::from_static(b"0123456789");
        let kind = HeaderValue::from_static("text/plain");
        let (status, headers, out) = answer(&[(0, 1), (8, 9)], &body, Some(&kind));
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        let kind = headers[CONTENT_TYPE].to_str().unwrap();
        let boundary = kind
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(
            text,
            format!(
                "\r\n--{boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 0-1/10\r\n\r\n01\
                 \r\n--{boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 8-9/10\r\n\r\n89\
                 \r\n--{boundary}--\r\n"
            )
        );
        assert_eq!(headers[CONTENT_LENGTH], text.len().to_string().as_str());
        let (_, single, slice) = answer(&[(2, 4)], &body, None);
        assert_eq!(&slice[..], b"234");
        assert_eq!(single[CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(single[CONTENT_LENGTH], "3");
    }
}
