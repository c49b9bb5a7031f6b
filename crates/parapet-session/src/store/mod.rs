//! Where sessions live: the [`SessionStore`] trait, in memory ([`MemoryStore`]) or on Redis
//! ([`RedisStore`]).

mod changes;
mod loaded;
mod memory;
mod new_session;
mod outcome;
mod redis;
mod sealed_user;

pub use changes::Changes;
pub use loaded::Loaded;
pub use memory::MemoryStore;
pub use new_session::NewSession;
pub use outcome::{Created, Incremented, Revoke, Saved};
pub use redis::RedisStore;

use parapet_core::{HashTag, StoreCall};

use crate::{SessionInfo, SessionKey, SessionRules};

/// The atomic operations sessions need. Each call is one round trip to a remote store and
/// is all-or-nothing; time comes from the store (Redis `TIME`), so instances with skewed
/// clocks agree. Every session expires by itself at `min(last use + idle, created +
/// absolute)`, and every user index by itself once its sessions have.
///
/// [`MemoryStore`] and [`RedisStore`] implement it and pass one conformance suite.
pub trait SessionStore: Send + Sync + 'static {
    /// The session of `key`, following a rotation alias to where it moved. When the last
    /// touch is at least [`touch_after`](SessionRules::touch_after) old, the same call
    /// moves the idle expiry.
    fn load(&self, key: &SessionKey, rules: &SessionRules) -> StoreCall<Option<Loaded>>;

    /// Applies `changes` to an existing session and moves its idle expiry.
    fn save(&self, key: &SessionKey, changes: &Changes, rules: &SessionRules) -> StoreCall<Saved>;

    /// Creates a session at `key` (which must be free), joining its user's index and
    /// applying the user's concurrent-session limit in the same step.
    fn create(
        &self,
        key: &SessionKey,
        session: &NewSession,
        rules: &SessionRules,
    ) -> StoreCall<Created>;

    /// Moves the session at `old` to `new` (same group) with `changes` applied. The old
    /// id keeps pointing at the new one for `grace` (zero: it dies at once), then is gone.
    fn rotate(
        &self,
        old: &SessionKey,
        new: &SessionKey,
        changes: &Changes,
        grace: std::time::Duration,
        rules: &SessionRules,
    ) -> StoreCall<Saved>;

    /// Adds `by` to the integer in `field` (absent counts as 0) and moves the idle expiry.
    fn incr(
        &self,
        key: &SessionKey,
        field: &str,
        by: i64,
        rules: &SessionRules,
    ) -> StoreCall<Incremented>;

    /// Ends the session at `key`, and takes it out of its user's index.
    fn delete(&self, key: &SessionKey) -> StoreCall<()>;

    /// The live sessions of the user with this group, oldest first; dead index entries
    /// are dropped on the way.
    fn list(&self, group: &[u8; 16]) -> StoreCall<Vec<SessionInfo>>;

    /// Ends sessions of the user with this group; answers how many ended.
    fn revoke(&self, group: &[u8; 16], which: Revoke) -> StoreCall<u64>;

    /// The group of a user's sessions: a hash of the user id (keyed, if the store has a
    /// key secret), so every instance puts one user's sessions in one place.
    fn user_group(&self, user: &str) -> [u8; 16] {
        *HashTag::of(user.as_bytes()).as_bytes()
    }

    /// The group of a new anonymous session: `None` (the default) for a random one; a store
    /// that budgets anonymous sessions per group ([`RedisStore`]) picks one of its own.
    fn anonymous_group(&self) -> Option<[u8; 16]> {
        None
    }
}

/// A shared store: the same sessions behind several layers, or a store kept for tests.
impl<T: SessionStore + ?Sized> SessionStore for std::sync::Arc<T> {
    fn load(&self, key: &SessionKey, rules: &SessionRules) -> StoreCall<Option<Loaded>> {
        (**self).load(key, rules)
    }
    fn save(&self, key: &SessionKey, changes: &Changes, rules: &SessionRules) -> StoreCall<Saved> {
        (**self).save(key, changes, rules)
    }
    fn create(
        &self,
        key: &SessionKey,
        session: &NewSession,
        rules: &SessionRules,
    ) -> StoreCall<Created> {
        (**self).create(key, session, rules)
    }
    fn rotate(
        &self,
        old: &SessionKey,
        new: &SessionKey,
        changes: &Changes,
        grace: std::time::Duration,
        rules: &SessionRules,
    ) -> StoreCall<Saved> {
        (**self).rotate(old, new, changes, grace, rules)
    }
    fn incr(
        &self,
        key: &SessionKey,
        field: &str,
        by: i64,
        rules: &SessionRules,
    ) -> StoreCall<Incremented> {
        (**self).incr(key, field, by, rules)
    }
    fn delete(&self, key: &SessionKey) -> StoreCall<()> {
        (**self).delete(key)
    }
    fn list(&self, group: &[u8; 16]) -> StoreCall<Vec<SessionInfo>> {
        (**self).list(group)
    }
    fn revoke(&self, group: &[u8; 16], which: Revoke) -> StoreCall<u64> {
        (**self).revoke(group, which)
    }
    fn user_group(&self, user: &str) -> [u8; 16] {
        (**self).user_group(user)
    }
    fn anonymous_group(&self) -> Option<[u8; 16]> {
        (**self).anonymous_group()
    }
}
