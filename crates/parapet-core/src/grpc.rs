//! gRPC refusals: a middleware that refuses a gRPC call answers in gRPC's terms.
//!
//! gRPC clients read the outcome of a call from `grpc-status`, not from the HTTP status
//! (gRPC over HTTP/2, "Responses": a "Trailers-Only" response is HTTP 200 whose headers hold
//! `grpc-status` and `grpc-message` and whose body is empty). An HTTP 401 or 429 reaches a
//! tonic client as an opaque transport error, so the middlewares answer gRPC requests with
//! [`status_response`] and everything else with a problem response.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response};

/// gRPC status codes the middlewares send (the numbering of `google.rpc.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// 3: the request is malformed.
    InvalidArgument = 3,
    /// 7: authenticated, but not allowed.
    PermissionDenied = 7,
    /// 8: a quota is exhausted (rate limits).
    ResourceExhausted = 8,
    /// 13: a server-side fault (a wiring mistake); not worth retrying.
    Internal = 13,
    /// 14: try again later (a store is unavailable).
    Unavailable = 14,
    /// 16: no valid credentials.
    Unauthenticated = 16,
}

/// True when the request is a gRPC call: a `POST` with `Content-Type: application/grpc`
/// or a subtype such as `application/grpc+proto` (media types compare case-insensitively).
/// A `GET` claiming gRPC gets an HTTP answer: a 200 refusal is for gRPC clients only.
pub fn is_grpc<B>(request: &Request<B>) -> bool {
    request.method() == Method::POST
        && request.headers().get(CONTENT_TYPE).is_some_and(|v| {
            let v = v.as_bytes();
            v.len() >= 16
                && v[..16].eq_ignore_ascii_case(b"application/grpc")
                && matches!(v.get(16), None | Some(b'+' | b';'))
        })
}

/// A Trailers-Only gRPC response: HTTP 200, `content-type: application/grpc`, `grpc-status`
/// and `grpc-message` (percent-encoded as the gRPC spec asks), empty body, and
/// `cache-control: no-store`, since a 200 could otherwise be stored by a cache on the way.
///
/// ```
/// use parapet_core::grpc::{status_response, Code};
///
/// let response = status_response(Code::Unauthenticated, "invalid token");
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["grpc-status"], "16");
/// assert_eq!(response.headers()["grpc-message"], "invalid%20token");
/// ```
pub fn status_response(code: Code, message: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("grpc-status", HeaderValue::from(code as u16));
    if let Ok(message) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", message);
    }
    response
}

/// gRPC's percent-encoding of `grpc-message`: bytes outside printable ASCII, and `%`, as
/// `%XX`.
fn percent_encode(message: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        let with = |method: Method, v: &'static str| {
            let request = Request::builder().method(method).header(CONTENT_TYPE, v);
            is_grpc(&request.body(()).unwrap_or_default())
        };
        assert!(with(Method::POST, "application/grpc"));
        assert!(with(Method::POST, "Application/gRPC+proto"));
        assert!(with(Method::POST, "application/grpc;charset=utf-8"));
        assert!(!with(Method::GET, "application/grpc"));
        assert!(!with(Method::POST, "application/grpc-web"));
        assert!(!with(Method::POST, "application/json"));
        assert!(!is_grpc(&Request::post("/").body(()).unwrap_or_default()));
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("a b%c\u{e9}"), "a%20b%25c%C3%A9");
        let response = status_response(Code::ResourceExhausted, "slow down\r\n");
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()["grpc-message"], "slow%20down%0D%0A");
        assert!(response.body().is_empty());
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
}
