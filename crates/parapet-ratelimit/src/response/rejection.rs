//! A refusal, and the default response for it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use parapet_core::Problem;

use crate::headers::ceil_seconds;

/// Why the layer answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// A policy refused the request (429).
    Limited,
    /// The key is banned (429).
    Banned,
    /// The request's cost exceeds a policy's burst: it can never be admitted, waiting does
    /// not help (400, no `Retry-After`).
    CostExceedsBurst,
    /// The request has no key and `MissingKey::Reject` is set (400).
    MissingKey,
    /// The server is set up wrong (no peer address for an IP key): 500, logged once.
    Misconfigured,
    /// The in-process store is full and set to refuse new subjects (429).
    CapacityExceeded,
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
            RejectionKind::Limited | RejectionKind::Banned | RejectionKind::CapacityExceeded => {
                StatusCode::TOO_MANY_REQUESTS
            }
            RejectionKind::CostExceedsBurst | RejectionKind::MissingKey => StatusCode::BAD_REQUEST,
            RejectionKind::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
            RejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn title(&self) -> &'static str {
        match self.kind {
            RejectionKind::Limited | RejectionKind::Banned => "too many requests",
            RejectionKind::CostExceedsBurst => {
                "request cost exceeds the rate limit's burst: it can never be admitted"
            }
            RejectionKind::MissingKey => "request has no rate-limit key",
            RejectionKind::Misconfigured => "rate limiter misconfigured",
            RejectionKind::CapacityExceeded => "rate limiter at capacity",
            RejectionKind::StoreUnavailable => "rate limiter unavailable",
        }
    }

    /// The default response: a small `application/problem+json` body (RFC 9457), such as
    /// `{"title":"too many requests","status":429,"retry_after":3,"violated_policies":["minute"]}`.
    ///
    /// `Retry-After` and the rate-limit fields are added by the layer, also to custom
    /// responses. To name draft-ietf-httpapi-ratelimit-headers' `quota-exceeded` problem
    /// type, build the response yourself.
    pub fn default_response(&self) -> Response<Bytes> {
        let mut problem = Problem::new(self.status(), self.title());
        if let Some(retry_after) = self.retry_after {
            problem = problem.number("retry_after", ceil_seconds(retry_after, true));
        }
        if !self.violated_policies.is_empty() {
            problem = problem.strings("violated_policies", &self.violated_policies);
        }
        problem.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_TYPE;

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
        let too_big = Rejection {
            kind: RejectionKind::CostExceedsBurst,
            retry_after: None,
            violated_policies: vec!["minute".into()],
        };
        let response = too_big.default_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(
            std::str::from_utf8(response.body())
                .unwrap()
                .contains("can never be admitted")
        );
    }
}
