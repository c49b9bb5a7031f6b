//! The `Cookie` lines of a request, as text.

use std::borrow::Cow;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// Every `Cookie` line of `headers` as text, for a cookie parser. A line with a byte that
/// is not ASCII is read with each such byte replaced by U+FFFD rather than skipped: one odd
/// cookie, which a sibling subdomain can set, must not hide the others on its line (a
/// session, a token). The bytes are not decoded as UTF-8: a multi-byte character such as a
/// no-break space would be trimmed as whitespace by the parser, and `\u{a0}__Host-session`
/// (which a browser lets any subdomain set, as it lacks the prefix) would read as
/// `__Host-session`. U+FFFD is no whitespace, so such a name stays another name.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cookie", HeaderValue::from_bytes(b"junk=\xc3\xa9; session=abc").unwrap());
/// let lines: Vec<_> = parapet_core::cookie_lines(&headers).collect();
/// assert!(lines[0].ends_with("; session=abc"));
/// // A no-break space before a name is not whitespace here.
/// headers.insert("cookie", HeaderValue::from_bytes(b"\xc2\xa0session=evil").unwrap());
/// let line = parapet_core::cookie_lines(&headers).next().unwrap();
/// assert!(!line.trim().starts_with("session"));
/// ```
pub fn cookie_lines(headers: &HeaderMap) -> impl Iterator<Item = Cow<'_, str>> {
    headers.get_all(COOKIE).iter().map(cookie_line)
}

/// One `Cookie` line as text, read as [`cookie_lines`] reads each.
pub fn cookie_line(line: &HeaderValue) -> Cow<'_, str> {
    if line.as_bytes().is_ascii() {
        // Visible ASCII and tabs: the field's own check lets nothing else through.
        Cow::Borrowed(line.to_str().unwrap_or_default())
    } else {
        Cow::Owned(
            line.as_bytes()
                .iter()
                .map(|&b| {
                    if b.is_ascii() {
                        char::from(b)
                    } else {
                        '\u{fffd}'
                    }
                })
                .collect(),
        )
    }
}
