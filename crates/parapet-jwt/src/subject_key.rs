//! Rate limits per verified subject (feature `ratelimit`).

use parapet_ratelimit::key::{KeyExtractor, NoKey};
use parapet_ratelimit::{RequestHead, Subject};

use crate::VerifiedToken;

/// A rate-limit key: the `sub` of the token the guard verified, for a
/// [`RateLimitLayer`](parapet_ratelimit::RateLimitLayer) placed behind the guard (inside
/// it, as `route_layer` after the `JwtLayer`). Absent when the request carries no verified
/// token (a route the guard does not cover, an optional guard's anonymous request) or the
/// token has no `sub`: combine it with `.or(…)` to fall back to the client address.
///
/// Only a verified token's subject is read, so a client cannot pick its bucket by forging
/// one; the subject is hashed into the Redis key like every other key.
///
/// ```
/// use parapet_jwt::SubjectKey;
/// use parapet_ratelimit::{Quota, RateLimitLayer};
///
/// let per_user = RateLimitLayer::builder()
///     .policy("user", Quota::per_minute(600))
///     .key(SubjectKey)
///     .build()?;
/// # Ok::<(), parapet_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SubjectKey;

impl KeyExtractor for SubjectKey {
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        let token = head
            .extensions
            .get::<VerifiedToken>()
            .ok_or(NoKey::Absent)?;
        let subject = token.subject().ok_or(NoKey::Absent)?;
        Ok(Subject::new("sub", subject))
    }
}
