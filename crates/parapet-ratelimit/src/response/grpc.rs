//! Refusals of gRPC calls, in gRPC's terms.
//!
//! A gRPC client reads `grpc-status`, not the HTTP status: a 429 reaches it as an opaque
//! transport error. A refusal of a gRPC call (see [`parapet_core::grpc::is_grpc`]) is
//! therefore a Trailers-Only response with `grpc-status` 8 RESOURCE_EXHAUSTED (429),
//! 3 INVALID_ARGUMENT (400), 14 UNAVAILABLE (503) or 13 INTERNAL (500). It keeps the
//! `Retry-After` and rate-limit fields as response metadata and adds the retry delay as
//! `grpc-retry-pushback-ms`, the field gRPC clients read to hold back a retry (gRPC
//! proposal A6, "Retry Throttling and Pushback").

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use parapet_core::grpc::{Code, status_response};

/// The gRPC form of the HTTP refusal `response`.
pub(crate) fn refusal(response: Response<Bytes>) -> Response<Bytes> {
    let (parts, _) = response.into_parts();
    let (code, message) = match parts.status {
        StatusCode::TOO_MANY_REQUESTS => (Code::ResourceExhausted, "rate limited"),
        StatusCode::BAD_REQUEST => (Code::InvalidArgument, "the call cannot be rate limited"),
        StatusCode::SERVICE_UNAVAILABLE => (Code::Unavailable, "rate limiter unavailable"),
        _ => (Code::Internal, "rate limiter misconfigured"),
    };
    let mut grpc = status_response(code, message);
    let headers = grpc.headers_mut();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    let pushback = parts
        .headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(seconds) = pushback {
        headers.insert(
            "grpc-retry-pushback-ms",
            HeaderValue::from(seconds.saturating_mul(1000)),
        );
    }
    grpc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_becomes_resource_exhausted_with_its_fields() {
        let mut http = Response::new(Bytes::from_static(b"{}"));
        *http.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        http.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        http.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("3"));
        http.headers_mut()
            .insert("ratelimit", HeaderValue::from_static("\"minute\";r=0;t=3"));
        let grpc = refusal(http);
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "8");
        assert_eq!(grpc.headers()["content-type"], "application/grpc");
        assert_eq!(grpc.headers()["grpc-retry-pushback-ms"], "3000");
        assert_eq!(grpc.headers()["retry-after"], "3");
        assert_eq!(grpc.headers()["ratelimit"], "\"minute\";r=0;t=3");
        assert!(grpc.body().is_empty());
    }

    #[test]
    fn other_refusals_map_to_their_codes() {
        for (status, code) in [(400, "3"), (503, "14"), (500, "13")] {
            let mut http = Response::new(Bytes::new());
            *http.status_mut() = StatusCode::from_u16(status).unwrap_or_default();
            assert_eq!(refusal(http).headers()["grpc-status"], code, "{status}");
        }
    }
}
