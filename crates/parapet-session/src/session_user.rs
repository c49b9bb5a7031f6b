//! The logged-in user of a request, for layers that run before the handler.

use std::fmt;
use std::sync::Arc;

/// The user a request's session is bound to ([`Session::set_user`](crate::Session::set_user)),
/// put in the request's extensions by [`LoadUserLayer`](crate::LoadUserLayer) before the
/// inner service runs, so that synchronous layers (a rate-limit key: `UserKey`, feature
/// `ratelimit`) can read it. Absent for an anonymous request.
///
/// It comes from the store, never from the request itself: a client cannot name itself
/// another user by forging a cookie. It is the user as the request arrived: a handler that
/// logs in, out or as someone else changes the [`Session`](crate::Session), not this value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionUser(Arc<str>);

impl SessionUser {
    pub(crate) fn new(user: &str) -> Self {
        Self(Arc::from(user))
    }

    /// The user id, as given to `set_user`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionUser").field(&&*self.0).finish()
    }
}
