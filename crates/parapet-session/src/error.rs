//! What session operations fail with.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use parapet_core::{Problem, StoreError};

/// A session operation that failed. Messages never hold a session id or a value.
///
/// Each maps to a response ([`response`](Self::response), and `IntoResponse` with the
/// `axum` feature), so a handler can end with `?`:
///
/// | error | status |
/// |---|---|
/// | [`Store`](Self::Store) | 503 + `Retry-After: 1` (the session is not lost, only unreachable) |
/// | [`Gone`](Self::Gone), [`NotLoggedIn`](Self::NotLoggedIn) | 401 |
/// | [`TooManySessions`](Self::TooManySessions) | 409 |
/// | [`TooLarge`](Self::TooLarge) | 413 |
/// | [`Empty`](Self::Empty) | 400 |
/// | [`NotAnInteger`](Self::NotAnInteger), [`Serialize`](Self::Serialize), [`Deserialize`](Self::Deserialize) | 500: the application's own data |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed or did not answer within its deadline.
    #[error("session store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The session ended (expired, revoked or logged out elsewhere) during the request.
    #[error("the session ended during the request")]
    Gone,
    /// The operation needs a session bound to a user.
    #[error("the session is not logged in")]
    NotLoggedIn,
    /// The user is at the concurrent-session limit and the policy refuses new sessions.
    #[error("the user has too many sessions")]
    TooManySessions,
    /// A field name or user id that is empty.
    #[error("session {0} must not be empty")]
    Empty(&'static str),
    /// A field name, a value or the whole session is past its size limit.
    #[error("session data too large: {0}")]
    TooLarge(&'static str),
    /// `incr` on a field that does not hold an integer, or that would overflow.
    #[error("session field is not an integer or would overflow")]
    NotAnInteger,
    /// A value could not be serialized.
    #[error("session value could not be serialized: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A stored value is not of the type asked for.
    #[error("session value could not be deserialized: {0}")]
    Deserialize(#[source] serde_json::Error),
}

impl SessionError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Gone | Self::NotLoggedIn => StatusCode::UNAUTHORIZED,
            Self::TooManySessions => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Empty(_) => StatusCode::BAD_REQUEST,
            Self::NotAnInteger | Self::Serialize(_) | Self::Deserialize(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// An `application/problem+json` response for this error (no internals in it).
    pub fn response(&self) -> Response<Bytes> {
        let title = match self {
            Self::Store(_) => "session store unavailable",
            Self::Gone => "session ended",
            Self::NotLoggedIn => "not logged in",
            Self::TooManySessions => "too many sessions",
            Self::TooLarge(_) => "session data too large",
            Self::Empty(_) => "empty session field name or user id",
            Self::NotAnInteger | Self::Serialize(_) | Self::Deserialize(_) => "session data error",
        };
        let mut response = Problem::new(self.status(), title).into_response();
        if matches!(self, Self::Store(_)) {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for SessionError {
    fn into_response(self) -> axum_core::response::Response {
        self.response().map(axum_core::body::Body::from)
    }
}
