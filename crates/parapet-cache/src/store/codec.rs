//! The Redis form of a stored response: a compact binary head block, then the raw body.
//! No JSON, no serde of the body: a hit decodes a few hundred bytes of head and slices the
//! body out of the reply without copying it.
//!
//! Layout (integers big-endian; `str` = u32 length + bytes):
//! `version u8 | key str | status u16 | requested i64 µs | received i64 µs | lifetime u64 µs
//! | flags u8 | while_revalidate u64 µs | if_error u64 µs | keep u64 µs
//! | vary u16 × (name str, value str) | tags u16 × str | headers u16 × (name str, value str)
//! | body (the rest)`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::stored::ReuseRules;
use crate::{CacheKey, StoredResponse};

const VERSION: u8 = 1;

fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

fn time(micros: i64) -> SystemTime {
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The stored form of `r`, or `None` if it has more header values, `Vary` fields or tags
/// than a count of the format holds (65,535): such a response is not stored.
pub(crate) fn encode(r: &StoredResponse) -> Option<Vec<u8>> {
    let count = |n: usize| u16::try_from(n).ok();
    let (vary, tags, fields) = (
        count(r.vary.len())?,
        count(r.tags.len())?,
        count(r.headers.len())?,
    );
    let head: usize = r
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 8)
        .sum();
    let mut out = BytesMut::with_capacity(128 + r.key.as_bytes().len() + head + r.body.len());
    let put_str = |out: &mut BytesMut, bytes: &[u8]| {
        out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        out.put_slice(bytes);
    };
    out.put_u8(VERSION);
    put_str(&mut out, r.key.as_bytes());
    out.put_u16(r.status.as_u16());
    out.put_i64(micros(r.requested));
    out.put_i64(micros(r.received));
    out.put_u64(duration_micros(r.lifetime));
    out.put_u8(u8::from(r.rules.no_cache) | (u8::from(r.rules.must_revalidate) << 1));
    out.put_u64(duration_micros(r.rules.while_revalidate));
    out.put_u64(duration_micros(r.rules.if_error));
    out.put_u64(duration_micros(r.rules.keep));
    out.put_u16(vary);
    for (name, value) in r.vary.iter().zip(&r.vary_values) {
        put_str(&mut out, name.as_str().as_bytes());
        put_str(&mut out, value);
    }
    out.put_u16(tags);
    for tag in &r.tags {
        put_str(&mut out, tag.as_bytes());
    }
    out.put_u16(fields);
    for (name, value) in &r.headers {
        put_str(&mut out, name.as_str().as_bytes());
        put_str(&mut out, value.as_bytes());
    }
    out.put_slice(&r.body);
    Some(out.to_vec())
}

struct Reader {
    data: Bytes,
    at: usize,
}

impl Reader {
    /// The next `n` bytes, borrowed: fixed fields and names are read without touching the
    /// buffer's reference count.
    fn raw(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let bytes = self.data.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.raw(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.raw(2)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.raw(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.raw(8)?.try_into().ok()?))
    }
    fn len(&mut self) -> Option<usize> {
        usize::try_from(u32::from_be_bytes(self.raw(4)?.try_into().ok()?)).ok()
    }
    /// A length-prefixed string, borrowed.
    fn str(&mut self) -> Option<&[u8]> {
        let n = self.len()?;
        self.raw(n)
    }
    /// A length-prefixed string as a slice of the buffer (kept by what it is read into).
    fn shared(&mut self) -> Option<Bytes> {
        let n = self.len()?;
        let start = self.at;
        self.raw(n)?;
        Some(self.data.slice(start..self.at))
    }
    fn duration(&mut self) -> Option<Duration> {
        Some(Duration::from_micros(self.u64()?))
    }
}

/// The response in `data` if it decodes and was stored under `key`; `None` for anything
/// else (another version, another key, damage).
pub(crate) fn decode(data: Vec<u8>, key: &CacheKey) -> Option<StoredResponse> {
    let mut r = Reader {
        data: Bytes::from(data),
        at: 0,
    };
    if r.u8()? != VERSION || r.str()? != key.as_bytes() {
        return None;
    }
    let status = StatusCode::from_u16(r.u16()?).ok()?;
    let requested = time(r.i64()?);
    let received = time(r.i64()?);
    let lifetime = r.duration()?;
    let flags = r.u8()?;
    let rules = ReuseRules {
        no_cache: flags & 1 != 0,
        must_revalidate: flags & 2 != 0,
        while_revalidate: r.duration()?,
        if_error: r.duration()?,
        keep: r.duration()?,
    };
    let mut vary = Vec::new();
    let mut vary_values = Vec::new();
    for _ in 0..r.u16()? {
        vary.push(HeaderName::from_bytes(r.str()?).ok()?);
        vary_values.push(Box::from(r.str()?));
    }
    let mut tags = Vec::new();
    for _ in 0..r.u16()? {
        tags.push(String::from(std::str::from_utf8(r.str()?).ok()?));
    }
    let count = r.u16()?;
    // Each field takes at least 8 bytes: a damaged count cannot ask for a huge map.
    let room = (r.data.len() - r.at.min(r.data.len())) / 8;
    // The count is of values, not names: capacity is only a first guess (at most 1,024
    // names), the map grows as names come, and one with more than http's limit is refused.
    let mut headers = HeaderMap::try_with_capacity(usize::from(count).min(room).min(1024)).ok()?;
    for _ in 0..count {
        let name = HeaderName::from_bytes(r.str()?).ok()?;
        let value = HeaderValue::from_maybe_shared(r.shared()?).ok()?;
        // More names than http's map can hold: refused, not a panic.
        headers.try_append(name, value).ok()?;
    }
    let body = r.data.slice(r.at..);
    let initial_age = StoredResponse::initial_age(&headers, requested, received);
    Some(StoredResponse {
        key: key.clone(),
        status,
        headers,
        body,
        vary,
        vary_values,
        requested,
        received,
        lifetime,
        initial_age,
        rules,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let key = CacheKey::new("https", "a.example", "/x?y=1");
        let mut headers = HeaderMap::new();
        headers.append("etag", HeaderValue::from_static("\"v\""));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let original = StoredResponse {
            key: key.clone(),
            status: StatusCode::NOT_FOUND,
            headers,
            body: Bytes::from_static(b"body bytes"),
            vary: vec![HeaderName::from_static("accept-language")],
            vary_values: vec![Box::from(&b"en"[..])],
            requested: UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_001),
            received: UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_002),
            lifetime: Duration::from_secs(30),
            initial_age: Duration::ZERO,
            rules: ReuseRules {
                no_cache: true,
                must_revalidate: false,
                while_revalidate: Duration::from_secs(5),
                if_error: Duration::from_secs(6),
                keep: Duration::from_secs(7),
            },
            tags: vec!["t1".into()],
        };
        let bytes = encode(&original).unwrap();
        let back = decode(bytes.clone(), &key).unwrap();
        assert_eq!(back.status, original.status);
        assert_eq!(back.headers, original.headers);
        assert_eq!(back.body, original.body);
        assert_eq!(
            (back.requested, back.received, back.lifetime),
            (original.requested, original.received, original.lifetime)
        );
        assert_eq!(back.rules, original.rules);
        assert_eq!(
            (back.vary, back.vary_values, back.tags),
            (
                original.vary.clone(),
                original.vary_values.clone(),
                original.tags.clone()
            )
        );
        assert!(
            decode(
                bytes.clone(),
                &CacheKey::new("https", "a.example", "/x?y=2")
            )
            .is_none(),
            "another key"
        );
        // A damaged header count asks for no huge map: the blob is refused, nothing panics.
        let mut damaged = encode(&StoredResponse {
            headers: HeaderMap::new(),
            body: Bytes::new(),
            ..original.clone()
        })
        .unwrap();
        let count_at = damaged.len() - 2;
        damaged[count_at..].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(decode(damaged.clone(), &key).is_none());
        // More distinct names than http's map holds (a count fits 65,535): refused.
        let mut crowded = damaged.clone();
        let count_at = crowded.len() - 2;
        crowded[count_at..].copy_from_slice(&30_000u16.to_be_bytes());
        for i in 0..30_000u32 {
            let name = format!("x-{i}");
            crowded.extend_from_slice(&u32::try_from(name.len()).unwrap().to_be_bytes());
            crowded.extend_from_slice(name.as_bytes());
            crowded.extend_from_slice(&1u32.to_be_bytes());
            crowded.push(b'v');
        }
        assert!(decode(crowded, &key).is_none());
        // More values than a count holds: not encoded (once, the count was cut to 0 and
        // the fields read back as the body).
        let mut many = HeaderMap::new();
        for _ in 0..70_000 {
            many.append("x-many", HeaderValue::from_static("v"));
        }
        assert!(
            encode(&StoredResponse {
                headers: many,
                ..original.clone()
            })
            .is_none()
        );
        // Past http's limit of names but not of values: what is stored reads back whole
        // (it was stored and never read: every request missed and wrote it again).
        let mut values = HeaderMap::new();
        for _ in 0..30_000 {
            values.append("x-many", HeaderValue::from_static("v"));
        }
        let stored = StoredResponse {
            headers: values,
            ..original.clone()
        };
        let back = decode(encode(&stored).unwrap(), &key).unwrap();
        assert_eq!(back.headers.get_all("x-many").iter().count(), 30_000);
        for cut in [0, 1, 10, 40, 90] {
            assert!(
                decode(bytes[..cut].to_vec(), &key).is_none(),
                "truncated at {cut}"
            );
        }
    }
}
