//! What the writing store calls answer.

/// The answer to [`SessionStore::save`](crate::SessionStore::save) and
/// [`rotate`](crate::SessionStore::rotate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Saved {
    /// Written.
    Done,
    /// The session no longer exists (expired, revoked or logged out): nothing written.
    Gone,
    /// The writes would take the session past its byte limit: nothing written.
    TooLarge,
    /// The new key of a rotation is taken (a 2⁻¹²⁸ event): nothing written.
    Collision,
}

/// The answer to [`SessionStore::create`](crate::SessionStore::create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Created {
    /// Created; this many of the user's oldest sessions were ended to make room.
    Done {
        /// Sessions evicted under [`OverLimit::EvictOldest`](crate::OverLimit).
        evicted: u32,
    },
    /// The key is taken: nothing written.
    Collision,
    /// The first fields exceed the byte limit: nothing written.
    TooLarge,
    /// The user is at the limit and the policy is
    /// [`OverLimit::RejectNew`](crate::OverLimit): nothing written.
    OverLimit,
}

/// The answer to [`SessionStore::incr`](crate::SessionStore::incr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incremented {
    /// The field's new value.
    Value(i64),
    /// The session no longer exists.
    Gone,
    /// The field holds something other than an integer (or would overflow): unchanged.
    NotAnInteger,
    /// The field would take the session past its byte limit: unchanged.
    TooLarge,
}

/// Which of a user's sessions [`SessionStore::revoke`](crate::SessionStore::revoke) ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revoke {
    /// The one with this id digest ([`SessionKey::id`](crate::SessionKey::id)).
    One([u8; 16]),
    /// All of them.
    All,
    /// All but the one with this id digest.
    AllExcept([u8; 16]),
}
