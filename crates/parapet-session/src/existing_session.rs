//! An extractor for requests that must carry a live session.

use crate::Session;

/// A [`Session`] that exists: the extractor (feature `axum`) reads it from the store
/// (one round trip) and answers 401 when the request has none, 503 when the store
/// cannot say. It derefs to [`Session`].
///
/// ```
/// # #[cfg(feature = "axum")]
/// async fn cart(session: parapet_session::ExistingSession) -> String {
///     let items: Option<Vec<String>> = session.get("items").await.ok().flatten();
///     format!("{items:?}")
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
