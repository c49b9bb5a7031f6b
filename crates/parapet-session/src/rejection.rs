//! Why a session extractor refused a request.

use bytes::Bytes;
use http::{Response, StatusCode};
use parapet_core::Problem;

use crate::SessionError;

/// Why [`Session`](crate::Session) or [`ExistingSession`](crate::ExistingSession) could not
/// be extracted (feature `axum`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The route is not behind a [`SessionLayer`](crate::SessionLayer): a server
    /// configuration error (500).
    #[error("no SessionLayer in front of this route")]
    MissingLayer,
    /// The request has no live session (401).
    #[error("no session")]
    NoSession,
    /// The store could not be asked (503).
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl SessionRejection {
    /// The response for this rejection.
    pub fn response(&self) -> Response<Bytes> {
        match self {
            Self::MissingLayer => {
                tracing::error!("a session extractor ran on a route without SessionLayer");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "session layer missing")
                    .into_response()
            }
            Self::NoSession => Problem::new(StatusCode::UNAUTHORIZED, "no session").into_response(),
            Self::Session(error) => error.response(),
        }
    }
}
