//! Why a request was refused, and the response that says so (RFC 6750 §3).

use bytes::Bytes;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use parapet_core::Problem;
use parapet_core::grpc::{self, Code};

/// A refusal of the guard or of a scope check.
///
/// | case | HTTP | `WWW-Authenticate` | gRPC |
/// |---|---|---|---|
/// | no credentials | 401 | `Bearer realm="…"` | 16 UNAUTHENTICATED |
/// | credentials that are not one bearer token: two `Authorization` fields, header and cookie both, an empty or oversized token, characters outside RFC 6750's `b64token` | 400 | `…, error="invalid_request"` | 3 INVALID_ARGUMENT |
/// | a token that is not a valid JWS, a bad signature, another algorithm, an unknown key, expired, not yet valid, wrong issuer or audience, missing `exp` or `iat`, too old | 401 | `…, error="invalid_token"` | 16 UNAUTHENTICATED |
/// | revoked | 401 | `…, error="invalid_token"` | 16 UNAUTHENTICATED |
/// | a scope the token lacks ([`VerifiedToken::require_scope`](crate::VerifiedToken::require_scope)) | 403 | `…, error="insufficient_scope", scope="…"` | 7 PERMISSION_DENIED |
/// | the revocation replica is stale and the policy fails closed | 503 + `Retry-After: 1` | – | 14 UNAVAILABLE |
///
/// Descriptions are fixed text of this crate: nothing of the token is echoed or logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtRejection {
    /// No bearer token.
    #[error("no bearer token")]
    Missing,
    /// The request's credentials are malformed (not one well-formed bearer token).
    #[error("malformed credentials: {0}")]
    InvalidRequest(&'static str),
    /// The token is malformed, forged, expired or otherwise not acceptable.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The token was revoked.
    #[error("the token was revoked")]
    Revoked,
    /// The token lacks this scope.
    #[error("the token lacks the scope {0:?}")]
    InsufficientScope(&'static str),
    /// Revocations cannot be checked now (stale replica, store down): try again.
    #[error("revocations cannot be checked now")]
    Unavailable,
    /// A claims extractor ran on a route the guard does not cover.
    #[error("the JWT guard does not cover this route")]
    NotGuarded,
}

impl JwtRejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Missing | Self::InvalidToken(_) | Self::Revoked => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotGuarded => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 error code, if the case has one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest(_) => Some("invalid_request"),
            Self::InvalidToken(_) | Self::Revoked => Some("invalid_token"),
            Self::InsufficientScope(_) => Some("insufficient_scope"),
            Self::Missing | Self::Unavailable | Self::NotGuarded => None,
        }
    }

    fn description(&self) -> &'static str {
        match self {
            Self::Missing => "a bearer token is required",
            Self::InvalidRequest(why) | Self::InvalidToken(why) => why,
            Self::Revoked => "the token was revoked",
            Self::InsufficientScope(_) => "the token lacks a required scope",
            Self::Unavailable => "revocations cannot be checked now",
            Self::NotGuarded => "the JWT guard does not cover this route",
        }
    }

    /// The label of `parapet_jwt_requests_total{result}`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::InvalidRequest(_) => "malformed",
            Self::InvalidToken(_) => "invalid",
            Self::Revoked => "revoked",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::Unavailable => "unavailable",
            Self::NotGuarded => "not_guarded",
        }
    }

    /// The response: a problem document with `WWW-Authenticate` for HTTP, or a
    /// Trailers-Only status for gRPC. `realm` goes into the challenge when given.
    pub fn response(&self, realm: Option<&str>, grpc: bool) -> Response<Bytes> {
        if grpc {
            let code = match self {
                Self::InvalidRequest(_) => Code::InvalidArgument,
                Self::InsufficientScope(_) => Code::PermissionDenied,
                Self::Unavailable => Code::Unavailable,
                Self::NotGuarded => Code::Internal,
                Self::Missing | Self::InvalidToken(_) | Self::Revoked => Code::Unauthenticated,
            };
            return grpc::status_response(code, self.description());
        }
        let title = match self.status() {
            StatusCode::BAD_REQUEST => "bad request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::SERVICE_UNAVAILABLE => "service unavailable",
            _ => "internal server error",
        };
        let mut problem = Problem::new(self.status(), title);
        if let Some(code) = self.error_code() {
            problem = problem.string("error", code);
        }
        let mut response = problem
            .string("error_description", self.description())
            .into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unavailable => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::NotGuarded => {}
            _ => {
                if let Ok(challenge) = HeaderValue::from_str(&self.challenge(realm)) {
                    headers.insert(WWW_AUTHENTICATE, challenge);
                }
            }
        }
        response
    }

    /// `Bearer realm="…", error="…", error_description="…"` (RFC 6750 §3). The realm was
    /// checked to need no escaping when the guard was built; a description or scope that
    /// would need it (an application's own `check` may return any text) is left out.
    fn challenge(&self, realm: Option<&str>) -> String {
        let mut params = Vec::with_capacity(4);
        if let Some(realm) = realm {
            params.push(format!("realm=\"{realm}\""));
        }
        if let Some(code) = self.error_code() {
            params.push(format!("error=\"{code}\""));
            if is_quotable(self.description()) {
                params.push(format!("error_description=\"{}\"", self.description()));
            }
        }
        if let Self::InsufficientScope(scope) = self
            && is_quotable(scope)
        {
            params.push(format!("scope=\"{scope}\""));
        }
        if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        }
    }
}

/// True when `text` can sit in a quoted-string as it is (printable ASCII, no `"` or `\`).
pub(crate) fn is_quotable(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for JwtRejection {
    fn into_response(self) -> axum_core::response::Response {
        self.response(None, false).map(axum_core::body::Body::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_cannot_be_quoted_is_left_out_of_the_challenge() {
        let rejection = JwtRejection::InvalidToken("tenant \"acme\" only");
        let challenge = rejection.challenge(Some("shop"));
        assert_eq!(challenge, "Bearer realm=\"shop\", error=\"invalid_token\"");
        let scope = JwtRejection::InsufficientScope("a\\b");
        assert!(!scope.challenge(None).contains("scope="));
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let r = JwtRejection::Missing.response(Some("api"), false);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer realm=\"api\"");
        let r = JwtRejection::Revoked.response(Some("api"), false);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token was revoked\""
        );
        let r = JwtRejection::InsufficientScope("admin").response(None, false);
        assert_eq!(r.status(), 403);
        assert!(
            r.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .ends_with("scope=\"admin\"")
        );
        let r = JwtRejection::InvalidRequest("two credentials").response(None, false);
        assert_eq!(r.status(), 400);
        let r = JwtRejection::Unavailable.response(None, false);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn grpc_requests_get_grpc_statuses() {
        let r = JwtRejection::InvalidToken("expired").response(None, true);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "16");
        let r = JwtRejection::InsufficientScope("x").response(None, true);
        assert_eq!(r.headers()["grpc-status"], "7");
        let r = JwtRejection::Unavailable.response(None, true);
        assert_eq!(r.headers()["grpc-status"], "14");
    }
}
