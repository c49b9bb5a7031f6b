//! Reading the proxy chain of `X-Forwarded-For` and `Forwarded` (RFC 7239) from the right,
//! byte by byte.
//!
//! Only the right end of a chain can be trusted: each trusted proxy appends the address it
//! received the request from, and everything to the left of the first untrusted hop was
//! written by the client. So the field lines are read last to first, and each line from its
//! end, one element at a time, and the caller stops at the first untrusted hop. Nothing to
//! the left of where it stops is ever looked at: an open quote, bytes ≥ 0x80, control bytes,
//! 10,000 hops or 64 KiB of garbage written by the client cannot change what the proxies
//! appended, and cost nothing beyond the bytes scanned to reach the stop.
//!
//! In `Forwarded`, a `,` inside a quoted-string does not separate elements. Reading from the
//! right, a `"` opens or closes a quoted-string unless an odd number of backslashes precede
//! it (then it is a quoted-pair, RFC 9110 §5.6.4). Elements a proxy writes are well formed,
//! so this reading is exact for them; a malformed element can only be the client's, and it
//! only ever yields "not an address".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;
use http::header::{FORWARDED, GetAll, HeaderName, HeaderValue, ValueIter};

/// `X-Forwarded-For`.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which list syntax a chain header uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// `X-Forwarded-For: client, proxy1`: bare nodes.
    Bare,
    /// `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

/// The hops of a chain, rightmost first: `Some(ip)` for an address, `None` for a hop that is
/// not one (`unknown`, an obfuscated name, garbage). Lazy: each step scans only the bytes of
/// one more element.
pub(crate) struct Hops<'a> {
    lines: std::iter::Rev<ValueIter<'a, HeaderValue>>,
    /// What is left of the current line, read from its end; `None` once it is used up.
    rest: Option<&'a [u8]>,
    syntax: Syntax,
}

impl<'a> Hops<'a> {
    pub(crate) fn new(headers: &'a HeaderMap, syntax: Syntax) -> Self {
        let name = match syntax {
            Syntax::Bare => X_FORWARDED_FOR,
            Syntax::Forwarded => FORWARDED,
        };
        let lines: GetAll<'a, HeaderValue> = headers.get_all(name);
        Self {
            lines: lines.iter().rev(),
            rest: None,
            syntax,
        }
    }
}

impl Iterator for Hops<'_> {
    type Item = Option<IpAddr>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(rest) = self.rest else {
                // Several field lines form one list, in order (RFC 9110 §5.3).
                self.rest = Some(self.lines.next()?.as_bytes());
                continue;
            };
            let (element, left) = match self.syntax {
                Syntax::Bare => split_last(rest, |_, _| true),
                Syntax::Forwarded => split_last_unquoted(rest),
            };
            self.rest = left;
            let element = element.trim_ascii();
            // Empty list elements are ignored (RFC 9110 §5.6.1).
            if element.is_empty() {
                continue;
            }
            return Some(match self.syntax {
                Syntax::Bare => parse_node(element),
                Syntax::Forwarded => forwarded_for(element).and_then(parse_node),
            });
        }
    }
}

/// The last `,`-separated element of `line` and what is left of it (`None` when the
/// element was the first). `is_separator(line, i)` may veto a comma.
fn split_last(
    line: &[u8],
    mut is_separator: impl FnMut(&[u8], usize) -> bool,
) -> (&[u8], Option<&[u8]>) {
    let mut i = line.len();
    while i > 0 {
        i -= 1;
        if line[i] == b',' && is_separator(line, i) {
            return (&line[i + 1..], Some(&line[..i]));
        }
    }
    (line, None)
}

/// [`split_last`] for `Forwarded`: commas inside quoted-strings do not count.
fn split_last_unquoted(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    let mut quoted = false;
    let mut checked = line.len();
    split_last(line, |line, comma| {
        // Walk the quotes between the last position checked and this comma.
        for i in (comma + 1..checked).rev() {
            if line[i] == b'"' && !is_escaped(line, i) {
                quoted = !quoted;
            }
        }
        checked = comma;
        !quoted
    })
}

/// True when the `"` at `i` is preceded by an odd number of backslashes.
fn is_escaped(line: &[u8], i: usize) -> bool {
    line[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for(element: &[u8]) -> Option<&[u8]> {
    let mut quoted = false;
    let mut start = 0;
    let mut pairs = Vec::new();
    for (i, &b) in element.iter().enumerate() {
        if b == b'"' && !is_escaped(element, i) {
            quoted = !quoted;
        } else if b == b';' && !quoted {
            pairs.push(&element[start..i]);
            start = i + 1;
        }
    }
    if quoted {
        return None; // an unterminated quoted-string: malformed
    }
    pairs.push(&element[start..]);
    pairs.into_iter().find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        pair[..eq]
            .trim_ascii()
            .eq_ignore_ascii_case(b"for")
            .then(|| pair[eq + 1..].trim_ascii())
    })
}

/// An RFC 7239 §6 node (`192.0.2.1`, `192.0.2.1:80`, `"[2001:db8::1]:443"`), also accepted
/// bare in `X-Forwarded-For` and in single-address headers.
pub(crate) fn parse_node(node: &[u8]) -> Option<IpAddr> {
    // Addresses are ASCII; anything else is not one.
    let node = std::str::from_utf8(node).ok()?.trim();
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

/// The `name=value` pairs of a whole `Forwarded` field, left to right (RFC 7239 §4:
/// elements separated by `,`, pairs by `;`, a value a token or a quoted string, its quotes
/// kept), or `None` if it does not parse. For what a field says beyond its addresses (the
/// cache keys `proto` and `host`); the client's address is read from the right instead
/// ([`ClientIp`](crate::ClientIp)), never with this.
///
/// ```
/// use parapet_core::address::forwarded_pairs;
///
/// let pairs = forwarded_pairs(r#"for="x;host=evil";proto=https, for=192.0.2.1"#).unwrap();
/// assert_eq!(pairs, [("for", r#""x;host=evil""#), ("proto", "https"), ("for", "192.0.2.1")]);
/// assert_eq!(forwarded_pairs(r#"for="open"#), None);
/// ```
pub fn forwarded_pairs(field: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Skip separators and whitespace between pairs.
        while i < bytes.len() && matches!(bytes[i], b',' | b';' | b' ' | b'\t') {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && is_tchar(bytes[i]) {
            i += 1;
        }
        if i == name_start || bytes.get(i) != Some(&b'=') {
            return None;
        }
        let name = &field[name_start..i];
        i += 1;
        let value_start = i;
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match bytes.get(i)? {
                    b'\\' => i += 2,
                    b'"' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        } else {
            while i < bytes.len() && is_tchar(bytes[i]) {
                i += 1;
            }
            if i == value_start {
                return None;
            }
        }
        out.push((name, field.get(value_start..i)?));
        // A pair ends at a separator, whitespace or the end.
        if i < bytes.len() && !matches!(bytes[i], b',' | b';' | b' ' | b'\t') {
            return None;
        }
    }
    Some(out)
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &HeaderName, values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(name.clone(), HeaderValue::from_bytes(v).unwrap());
        }
        headers
    }

    fn hops(name: &HeaderName, values: &[&[u8]], syntax: Syntax) -> Vec<Option<String>> {
        Hops::new(&headers(name, values), syntax)
            .take(10)
            .map(|h| h.map(|ip| ip.to_string()))
            .collect()
    }

    fn some(ips: &[&str]) -> Vec<Option<String>> {
        ips.iter().map(|s| Some((*s).to_owned())).collect()
    }

    #[test]
    fn x_forwarded_for_right_to_left_across_lines() {
        let got = hops(
            &X_FORWARDED_FOR,
            &[b"1.1.1.1, 2.2.2.2", b"3.3.3.3,,"],
            Syntax::Bare,
        );
        assert_eq!(got, some(&["3.3.3.3", "2.2.2.2", "1.1.1.1"]));
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
                parse_node(node.as_bytes())
                    .map(|ip| ip.to_string())
                    .as_deref(),
                want,
                "{node}"
            );
        }
    }

    #[test]
    fn forwarded_elements_and_quotes() {
        let got = hops(
            &FORWARDED,
            &[
                br#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
                b"proto=https;for=198.51.100.1",
                b"by=10.0.0.1",
            ],
            Syntax::Forwarded,
        );
        assert_eq!(got[0], None, "an element without for= is not an address");
        assert_eq!(got[1].as_deref(), Some("198.51.100.1"));
        assert_eq!(got[2].as_deref(), Some("2001:db8:cafe::17"));
        assert_eq!(got[3].as_deref(), Some("192.0.2.60"));
        let quoted_comma = hops(
            &FORWARDED,
            &[br#"for="a,b", for=192.0.2.9"#],
            Syntax::Forwarded,
        );
        assert_eq!(quoted_comma, vec![Some("192.0.2.9".to_owned()), None]);
        let escaped = hops(
            &FORWARDED,
            &[br#"for="x\",y", for=192.0.2.9"#],
            Syntax::Forwarded,
        );
        assert_eq!(escaped, vec![Some("192.0.2.9".to_owned()), None]);
    }

    #[test]
    fn an_open_quote_on_the_left_cannot_swallow_what_a_proxy_appended() {
        let got = hops(
            &FORWARDED,
            &[br#"for=198.51.100.1;x=", for=203.0.113.7"#],
            Syntax::Forwarded,
        );
        assert_eq!(got[0].as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn bytes_outside_ascii_on_the_left_leave_the_right_readable() {
        let got = hops(
            &X_FORWARDED_FOR,
            &[b"\xff\x80garbage, 203.0.113.7"],
            Syntax::Bare,
        );
        assert_eq!(got[0].as_deref(), Some("203.0.113.7"));
        assert_eq!(got[1], None);
        let got = hops(
            &FORWARDED,
            &[b"for=\xfe\"\\, for=203.0.113.7"],
            Syntax::Forwarded,
        );
        assert_eq!(got[0].as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn long_chains_are_read_lazily() {
        let long = vec!["10.0.0.1"; 10_000].join(",");
        let headers = headers(&X_FORWARDED_FOR, &[long.as_bytes()]);
        assert_eq!(Hops::new(&headers, Syntax::Bare).take(5).count(), 5);
    }
}
