//! An extractor for requests that must carry a live session.

use crate::Session;

/// A [`Session`] that exists: the extractor (feature `axum`) reads it from the store
/// (one round trip) and answers 401 when the request has none, 503 when the store
/// cannot say; `Option<ExistingSession>` is `None` when there is none. It derefs to
/// [`Session`].
///
/// (`Option<Session>` is `None` only when the route has no [`SessionLayer`](crate::SessionLayer):
/// every request behind the layer has a `Session`, new or not.)
///
/// ```
/// use parapet_session::{ExistingSession, SessionError};
///
/// async fn cart(session: ExistingSession) -> Result<String, SessionError> {
///     let items: Option<Vec<String>> = session.get("items").await?;
///     Ok(format!("{items:?}"))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ExistingSession(pub Session);

impl std::ops::Deref for ExistingSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}
