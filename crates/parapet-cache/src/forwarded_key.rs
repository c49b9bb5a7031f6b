//! The forwarded scheme, host, port and prefix of a request that came through a trusted
//! proxy, as a part of the cache key.
//!
//! Behind a load balancer, the origin may build links from `X-Forwarded-Proto` / `-Host` /
//! `-Port` / `-Prefix` or `Forwarded`'s `proto=` and `host=` (RFC 7239 §5.3, §5.4). Outside
//! the key, such a field lets one request poison what others get, so by default a request
//! carrying one bypasses the cache ([`UNKEYED_HEADERS`](crate::UNKEYED_HEADERS)). From a
//! trusted proxy they go into the key instead: a balancer that sets them on every request
//! leaves the cache working, and a value a client forged (passed on by the balancer) keys
//! an entry of its own, which only requests with the same forged value can reach.

use http::{HeaderMap, HeaderName};
use parapet_core::address::forwarded_pairs;

/// The fields keyed for a request from a trusted proxy (all on the bypass list otherwise):
/// the scheme in each spelling frameworks read (`X-Forwarded-Ssl: on`, `Front-End-Https: on`
/// …), the host, port and prefix.
pub(crate) const FORWARDING: [HeaderName; 10] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-protocol"),
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("front-end-https"),
    HeaderName::from_static("x-url-scheme"),
];

/// The key part: each field's value, length-prefixed so that no two sets of values share
/// one; of `Forwarded`, only its `proto` and `host` parameters (its `for` and `by` name the
/// client and proxies, which would give every client an entry of its own).
pub(crate) fn key_part(headers: &HeaderMap) -> String {
    let mut part = String::new();
    for name in &FORWARDING {
        let value = if name == "forwarded" {
            forwarded_proto_and_host(headers)
        } else {
            joined(headers, name)
        };
        part.push_str(&value.len().to_string());
        part.push(':');
        part.push_str(&value);
    }
    part
}

/// Every line of `name`, joined with `,`; a value with bytes that are not UTF-8 is keyed
/// as hex after a line feed, which no field value holds, so distinct values stay distinct.
fn joined(headers: &HeaderMap, name: &HeaderName) -> String {
    let mut bytes = Vec::new();
    for (i, line) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(line.as_bytes());
    }
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e
            .into_bytes()
            .iter()
            .fold(String::from("\n"), |mut hex, b| {
                hex.push_str(&format!("{b:02x}"));
                hex
            }),
    }
}

/// `Forwarded`'s `proto=` and `host=` pairs in order (`proto=https;host=a.example,…`), or
/// the whole field when it does not parse: a value the origin might read otherwise than we
/// do is then keyed as it is.
fn forwarded_proto_and_host(headers: &HeaderMap) -> String {
    let raw = joined(headers, &FORWARDING[0]);
    match forwarded_pairs(&raw) {
        Some(pairs) => pairs
            .into_iter()
            .filter(|(name, _)| {
                name.eq_ignore_ascii_case("proto") || name.eq_ignore_ascii_case("host")
            })
            .map(|(name, value)| format!("{}={value}", name.to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(";"),
        None => format!("raw:{raw}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_client_in_forwarded_is_not_keyed_proto_and_host_are() {
        let a = key_part(&headers(&[(
            "forwarded",
            "for=192.0.2.1;proto=https;host=shop.example",
        )]));
        let b = key_part(&headers(&[(
            "forwarded",
            "for=192.0.2.2;proto=https;host=shop.example",
        )]));
        let c = key_part(&headers(&[(
            "forwarded",
            "for=192.0.2.1;proto=http;host=shop.example",
        )]));
        let d = key_part(&headers(&[(
            "forwarded",
            "for=192.0.2.1;proto=https;host=evil.example",
        )]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn quoted_values_cannot_smuggle_a_pair() {
        // `host=evil` inside a quoted `for` is not a host.
        let smuggled = key_part(&headers(&[(
            "forwarded",
            r#"for="x;host=evil";proto=https"#,
        )]));
        let plain = key_part(&headers(&[("forwarded", "for=x;proto=https")]));
        assert_eq!(smuggled, plain);
        // What does not parse is keyed whole.
        let broken = key_part(&headers(&[("forwarded", r#"for="open;proto=https"#)]));
        assert_ne!(broken, plain);
        assert!(broken.contains("raw:"), "{broken}");
    }

    #[test]
    fn bytes_that_are_not_utf8_stay_apart_from_text() {
        let mut raw = HeaderMap::new();
        raw.insert(
            "x-forwarded-host",
            http::HeaderValue::from_bytes(&[0x80]).unwrap(),
        );
        let text = key_part(&headers(&[("x-forwarded-host", "x80")]));
        assert_ne!(key_part(&raw), text);
    }

    #[test]
    fn values_are_length_prefixed_and_fields_apart() {
        let a = key_part(&headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "443"),
        ]));
        let b = key_part(&headers(&[("x-forwarded-proto", "https443")]));
        assert_ne!(a, b);
        let none = key_part(&HeaderMap::new());
        assert_ne!(a, none);
        let host = key_part(&headers(&[("x-forwarded-host", "a.example")]));
        let prefix = key_part(&headers(&[("x-forwarded-prefix", "a.example")]));
        assert_ne!(host, prefix);
    }

    #[test]
    fn every_spelling_of_the_scheme_is_keyed() {
        let none = key_part(&HeaderMap::new());
        let mut seen = vec![none];
        for name in [
            "x-forwarded-scheme",
            "x-forwarded-protocol",
            "x-forwarded-ssl",
            "front-end-https",
            "x-url-scheme",
        ] {
            let part = key_part(&headers(&[(name, "on")]));
            assert!(!seen.contains(&part), "{name}");
            seen.push(part);
        }
    }
}
