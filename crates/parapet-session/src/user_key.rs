//! Rate limits per logged-in user (feature `ratelimit`).

use parapet_ratelimit::key::{KeyExtractor, NoKey};
use parapet_ratelimit::{RequestHead, Subject};

use crate::SessionUser;

/// A rate-limit key: the user of the request's session, as the store knows it (a
/// [`SessionUser`] that [`LoadUserLayer`](crate::LoadUserLayer) put in the request's
/// extensions). Absent for an anonymous request, or when no `LoadUserLayer` stands outside
/// the limiter: combine it with `.or(…)` to fall back to the client address.
///
/// The user comes from the store, never from the cookie: a forged or stolen-and-expired
/// cookie is anonymous, so a client can neither pick another user's bucket nor escape its
/// own. The id is hashed into the Redis key like every other key.
///
/// ```
/// use parapet_ratelimit::{Quota, RateLimitLayer};
/// use parapet_session::UserKey;
///
/// let per_user = RateLimitLayer::builder()
///     .policy("user", Quota::per_minute(120))
///     .key(UserKey)
///     .build()?;
/// # Ok::<(), parapet_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct UserKey;

impl KeyExtractor for UserKey {
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        let user = head.extensions.get::<SessionUser>().ok_or(NoKey::Absent)?;
        Ok(Subject::new("user", user.as_str()))
    }
}
