//! gRPC refusals: a middleware that refuses a gRPC call answers in gRPC's terms.
//!
//! gRPC clients read the outcome of a call from `grpc-status`, not from the HTTP status
//! (gRPC over HTTP/2, "Responses": a "Trailers-Only" response is HTTP 200 whose headers hold
//! `grpc-status` and `grpc-message` and whose body is empty). An HTTP 401 or 429 reaches a
//! tonic client as an opaque transport error, so the middlewares answer gRPC requests with
//! [`status_response`] and everything else with a problem response.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response};

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

/// True when the request is a gRPC call (`Content-Type: application/grpc` or a subtype such
/// as `application/grpc+proto`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(b"application/grpc") && matches!(v.get(16), None | Some(b'+' | b';'))
    })
}

/// A Trailers-Only gRPC response: HTTP 200, `content-type: application/grpc`, `grpc-status`
/// and `grpc-message` (percent-encoded as the gRPC spec asks), empty body.
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
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            is_grpc(&h)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("application/grpc;charset=utf-8"));
        assert!(!with("application/grpc-web"));
        assert!(!with("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("a b%c\u{e9}"), "a%20b%25c%C3%A9");
        let response = status_response(Code::ResourceExhausted, "slow down\r\n");
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()["grpc-message"], "slow%20down%0D%0A");
        assert!(response.body().is_empty());
    }
}
