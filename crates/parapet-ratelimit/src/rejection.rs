//! A refusal, and the default response for it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::headers::ceil_seconds;

/// Why the layer answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// A policy refused the request (429).
    Limited,
    /// The key is banned (429).
    Banned,
    /// The request's cost exceeds a policy's burst: it can never be admitted (429, no
    /// `Retry-After`).
    CostExceedsBurst,
    /// The request has no key and `MissingKey::Reject` is set (400).
    MissingKey,
    /// The store failed and `OnStoreError::FailClosed` is set (503).
    StoreUnavailable,
}

/// A refusal, handed to a custom response builder (`.rejection_response(…)`).
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Why.
    pub kind: RejectionKind,
    /// When the same request would be admitted, if known.
    pub retry_after: Option<Duration>,
    /// The names of the policies that refused it (for `Limited`).
    pub violated_policies: Vec<Arc<str>>,
}

impl Rejection {
    /// The status code of the default response.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::Limited | RejectionKind::Banned | RejectionKind::CostExceedsBurst => {
                StatusCode::TOO_MANY_REQUESTS
            }
            RejectionKind::MissingKey => StatusCode::BAD_REQUEST,
            RejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The default response: a small `application/problem+json` body (RFC 9457), such as
    /// `{"title":"too many requests","status":429,"retry_after":3,"violated_policies":["minute"]}`.
    ///
    /// The problem `type` is left out, which means `about:blank` (RFC 9457 §4.2.1): the
    /// status says it all, and every byte counts on a path that answers floods. To name
    /// draft-ietf-httpapi-ratelimit-headers' `quota-exceeded` type, build the response
    /// yourself. `Retry-After` and the rate-limit fields are added by the layer, also to
    /// custom responses.
    pub fn default_response(&self) -> Response<Bytes> {
        // Refusals answer floods: one allocation for the body, no formatting machinery.
        let status = self.status();
        let prefix = match self.kind {
            RejectionKind::Limited | RejectionKind::Banned => {
                r#"{"title":"too many requests","status":429"#
            }
            RejectionKind::CostExceedsBurst => {
                r#"{"title":"request cost exceeds the rate limit","status":429"#
            }
            RejectionKind::MissingKey => r#"{"title":"request has no rate-limit key","status":400"#,
            RejectionKind::StoreUnavailable => {
                r#"{"title":"rate limiter unavailable","status":503"#
            }
        };
        let mut body = String::with_capacity(128);
        body.push_str(prefix);
        if let Some(retry_after) = self.retry_after {
            body.push_str(r#","retry_after":"#);
            body.push_str(itoa::Buffer::new().format(ceil_seconds(retry_after, true)));
        }
        if !self.violated_policies.is_empty() {
            // Policy names are validated to [A-Za-z0-9_.-]: nothing to escape.
            body.push_str(r#","violated_policies":["#);
            for (i, name) in self.violated_policies.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push('"');
                body.push_str(name);
                body.push('"');
            }
            body.push(']');
        }
        body.push('}');
        let mut response = Response::new(Bytes::from(body));
        *response.status_mut() = status;
        // Room for the fields the layer adds, so the map is allocated once.
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        *response.headers_mut() = headers;
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bodies() {
        let limited = Rejection {
            kind: RejectionKind::Limited,
            retry_after: Some(Duration::from_millis(2500)),
            violated_policies: vec!["minute".into()],
        };
        let response = limited.default_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(
            response.body(),
            r#"{"title":"too many requests","status":429,"retry_after":3,"violated_policies":["minute"]}"#
        );
        let missing = Rejection {
            kind: RejectionKind::MissingKey,
            retry_after: None,
            violated_policies: vec![],
        };
        assert_eq!(missing.default_response().status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            missing.default_response().body(),
            r#"{"title":"request has no rate-limit key","status":400}"#
        );
    }
}
