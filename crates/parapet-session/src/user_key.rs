//! Rate limits per logged-in user (feature `ratelimit`).

use parapet_ratelimit::key::{KeyExtractor, NoKey};
use parapet_ratelimit::{RequestHead, Subject};

use crate::SessionUser;

/// A rate-limit key: the user of the request's session, as the store knows it (a
/// [`SessionUser`] that [`LoadUserLayer`](crate::LoadUserLayer) put in the request's
/// extensions). Absent for an anonymous request, or when no `LoadUserLayer` stands outside
/// the limiter: combine it with `.or(…)` to fall back to the client address, or set
/// `MissingKey::Skip` when a per-address limit outside already holds anonymous requests.
///
/// The user comes from the store, never from the cookie: a forged, expired or logged-out
/// cookie is anonymous, so a client cannot charge another user's bucket without holding a
/// live session of theirs. Every session of a user shares the bucket, so one device can use
/// up the others' share. A client that drops its cookie is anonymous and charged to the
/// fallback key (or, with `Skip`, to the limits outside): it no longer acts as the user.
/// The id is hashed into the Redis key like every other key.
///
/// ```
/// use parapet_core::PeerIp;
/// use parapet_ratelimit::key::KeyExtractor;
/// use parapet_ratelimit::{Quota, RateLimitLayer};
/// use parapet_session::UserKey;
///
/// let per_user = RateLimitLayer::builder()
///     .policy("user", Quota::per_minute(120))
///     .key(UserKey.or(PeerIp::new()))
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
