//! Reading the proxy chain from `X-Forwarded-For` and `Forwarded` (RFC 7239), right to left.
//!
//! Only the right end of the chain is trustworthy: each trusted proxy appends the address it
//! received the request from, and everything to the left of the first untrusted hop was
//! written by the client. So hops are read from the right, lazily, and at most `limit` of
//! them. `X-Forwarded-For` is split lazily from the right, so a huge header costs one scan
//! and no allocation beyond the hops kept; `Forwarded` allows quoted strings, so its
//! elements are split left to right first (bounded by the server's header size limit).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};

use super::ForwardedHeader;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Up to `limit` hops, rightmost first; `None` for a hop that is not an IP address
/// (`unknown`, an obfuscated name, garbage, non-ASCII bytes).
pub(crate) fn hops_from_right(
    headers: &HeaderMap,
    which: ForwardedHeader,
    limit: usize,
) -> Vec<Option<IpAddr>> {
    let name = match which {
        ForwardedHeader::XForwardedFor => X_FORWARDED_FOR,
        ForwardedHeader::Forwarded => FORWARDED,
    };
    let mut hops = Vec::new();
    // Several field lines form one list, in order (RFC 9110 §5.3).
    for line in headers.get_all(name).iter().rev() {
        let Ok(line) = line.to_str() else {
            hops.push(None);
            return hops;
        };
        let elements: Box<dyn Iterator<Item = &str>> = match which {
            ForwardedHeader::XForwardedFor => Box::new(line.rsplit(',')),
            ForwardedHeader::Forwarded => Box::new(split_unquoted(line, b',').rev()),
        };
        for element in elements {
            if hops.len() >= limit {
                return hops;
            }
            let element = element.trim();
            // Empty list elements are ignored (RFC 9110 §5.6.1).
            if element.is_empty() {
                continue;
            }
            hops.push(match which {
                ForwardedHeader::XForwardedFor => parse_node(element),
                ForwardedHeader::Forwarded => forwarded_for(element).and_then(parse_node),
            });
        }
    }
    hops
}

/// The `for=` value of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<&str> {
    split_unquoted(element, b';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim())
    })
}

/// An RFC 7239 §6 node (`192.0.2.1`, `192.0.2.1:80`, `"[2001:db8::1]:443"`), also accepted
/// bare in `X-Forwarded-For`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let node = node
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(node);
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port(after.strip_prefix(':')?)) {
            return None;
        }
        return ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = node.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(s: &str) -> bool {
    (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Splits on `sep` outside double quotes (a quoted-string may hold `,` or `;`).
fn split_unquoted(s: &str, sep: u8) -> impl DoubleEndedIterator<Item = &str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hops(name: &str, values: &[&str], which: ForwardedHeader) -> Vec<Option<String>> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        hops_from_right(&headers, which, 10)
            .into_iter()
            .map(|h| h.map(|ip| ip.to_string()))
            .collect()
    }

    #[test]
    fn x_forwarded_for_right_to_left_across_lines() {
        let got = hops(
            "x-forwarded-for",
            &["1.1.1.1, 2.2.2.2", "3.3.3.3,,"],
            ForwardedHeader::XForwardedFor,
        );
        assert_eq!(
            got,
            [Some("3.3.3.3"), Some("2.2.2.2"), Some("1.1.1.1")].map(|s| s.map(String::from))
        );
    }

    #[test]
    fn node_forms() {
        for (node, want) in [
            ("192.0.2.1", Some("192.0.2.1")),
            ("192.0.2.1:8080", Some("192.0.2.1")),
            ("\"[2001:db8::17]:4711\"", Some("2001:db8::17")),
            ("[2001:db8::17]", Some("2001:db8::17")),
            ("2001:db8::17", Some("2001:db8::17")),
            ("::ffff:192.0.2.1", Some("::ffff:192.0.2.1")),
            ("unknown", None),
            ("_hidden", None),
            ("fe80::1%eth0", None),
            ("[2001:db8::17]:x", None),
            ("192.0.2.1:99999999", None),
            ("999.0.0.1", None),
            ("<script>", None),
        ] {
            assert_eq!(
                parse_node(node).map(|ip| ip.to_string()).as_deref(),
                want,
                "{node}"
            );
        }
    }

    #[test]
    fn forwarded_elements_and_quotes() {
        let got = hops(
            "forwarded",
            &[
                r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
                "proto=https;for=198.51.100.1",
                "by=10.0.0.1",
            ],
            ForwardedHeader::Forwarded,
        );
        assert_eq!(got[0], None, "an element without for= is not an address");
        assert_eq!(got[1].as_deref(), Some("198.51.100.1"));
        assert_eq!(got[2].as_deref(), Some("2001:db8:cafe::17"));
        assert_eq!(got[3].as_deref(), Some("192.0.2.60"));
        let quoted_comma = hops(
            "forwarded",
            &[r#"for="a,b", for=192.0.2.9"#],
            ForwardedHeader::Forwarded,
        );
        assert_eq!(quoted_comma, vec![Some("192.0.2.9".to_owned()), None]);
    }

    #[test]
    fn non_ascii_is_a_bad_hop_and_limit_is_respected() {
        let mut headers = HeaderMap::new();
        headers.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"1.1.1.1, \xff").unwrap(),
        );
        assert_eq!(
            hops_from_right(&headers, ForwardedHeader::XForwardedFor, 10),
            vec![None]
        );
        let long = vec!["10.0.0.1"; 10_000].join(",");
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_str(&long).unwrap());
        assert_eq!(
            hops_from_right(&headers, ForwardedHeader::XForwardedFor, 5).len(),
            5
        );
    }
}
