//! The `Cookie` lines of a request, as text.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::COOKIE;

/// Every `Cookie` line of `headers` as text, for a cookie parser. A line with a byte that
/// is not ASCII is read with that byte replaced (U+FFFD) rather than skipped: one odd
/// cookie, which a sibling subdomain can set, must not hide the others on its line (a
/// session, a token). A cookie holding such a byte fails its own parse only.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cookie", HeaderValue::from_bytes(b"junk=\xc3\xa9; session=abc").unwrap());
/// let lines: Vec<_> = parapet_core::cookie_lines(&headers).collect();
/// assert!(lines[0].ends_with("; session=abc"));
/// ```
pub fn cookie_lines(headers: &HeaderMap) -> impl Iterator<Item = Cow<'_, str>> {
    headers
        .get_all(COOKIE)
        .iter()
        .map(|line| match line.to_str() {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line.as_bytes()),
        })
}
