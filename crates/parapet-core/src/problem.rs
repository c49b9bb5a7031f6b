//! `application/problem+json` responses (RFC 9457), built without a JSON library.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

/// A small problem-details response body, such as
/// `{"title":"too many requests","status":429,"retry_after":3}`.
///
/// The `type` member is left out, which means `about:blank` (RFC 9457 §4.2.1): the status
/// and title say it all. Members are written in the order they are added. The title and
/// member names are static text of the middleware, written as they are (they must hold no
/// `"`, `\` or control character; checked in debug builds); string values are JSON-escaped,
/// so a value from a request cannot break out of its string. Refusals answer floods, so
/// nothing here formats or escapes what is known when the code is written.
///
/// ```
/// use http::StatusCode;
/// use parapet_core::Problem;
///
/// let response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "too many requests")
///     .number("retry_after", 3)
///     .strings("violated_policies", ["minute"])
///     .into_response();
/// assert_eq!(response.status(), 429);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// assert_eq!(
///     response.body(),
///     r#"{"title":"too many requests","status":429,"retry_after":3,"violated_policies":["minute"]}"#
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    body: String,
}

impl Problem {
    /// A problem with this status and a short, lowercase title.
    pub fn new(status: StatusCode, title: &'static str) -> Self {
        debug_assert!(is_plain(title), "a problem title needs no escaping");
        let mut body = String::with_capacity(128);
        body.push_str(r#"{"title":""#);
        body.push_str(title);
        body.push_str(r#"","status":"#);
        body.push_str(itoa::Buffer::new().format(status.as_u16()));
        Self { status, body }
    }

    /// Adds `"name":"value"`, `value` escaped.
    #[must_use]
    pub fn string(mut self, name: &'static str, value: &str) -> Self {
        self.member(name);
        push_json_string(&mut self.body, value);
        self
    }

    /// Adds `"name":n`.
    #[must_use]
    pub fn number(mut self, name: &'static str, value: u64) -> Self {
        self.member(name);
        self.body.push_str(itoa::Buffer::new().format(value));
        self
    }

    /// Adds `"name":["a","b"]`, the values escaped.
    #[must_use]
    pub fn strings<I, S>(mut self, name: &'static str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.member(name);
        self.body.push('[');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.body.push(',');
            }
            push_json_string(&mut self.body, value.as_ref());
        }
        self.body.push(']');
        self
    }

    fn member(&mut self, name: &'static str) {
        debug_assert!(is_plain(name), "a member name needs no escaping");
        self.body.push_str(",\"");
        self.body.push_str(name);
        self.body.push_str("\":");
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response: this status, `Content-Type: application/problem+json`, the body.
    pub fn into_response(mut self) -> Response<Bytes> {
        self.body.push('}');
        let mut response = Response::new(Bytes::from(self.body));
        *response.status_mut() = self.status;
        // Room for the fields middlewares add (Retry-After, rate-limit fields), so the map
        // is allocated once.
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        *response.headers_mut() = headers;
        response
    }
}

/// True for text that is a JSON string's content as it is.
fn is_plain(text: &str) -> bool {
    text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Appends `value` as a JSON string (RFC 8259 §7).
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    if is_plain(value) {
        out.push_str(value);
        out.push('"');
        return;
    }
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[n >> 4]));
                out.push(char::from(HEX[n & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let response = Problem::new(StatusCode::BAD_REQUEST, "bad input")
            .string("detail", "a\"b\\c\n\u{1}")
            .into_response();
        assert_eq!(
            response.body(),
            r#"{"title":"bad input","status":400,"detail":"a\"b\\c\n\u0001"}"#
        );
    }
}
