//! What a login does when its user is at the concurrent-session limit.

/// What [`Session::set_user`](crate::Session::set_user) does when the user already has
/// [`max_sessions`](crate::SessionLayerBuilder::max_sessions) live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverLimit {
    /// End the user's oldest session (by creation) to make room: a new device always logs
    /// in, the oldest is logged out.
    #[default]
    EvictOldest,
    /// Refuse the login with [`SessionError::TooManySessions`](crate::SessionError): the
    /// user must log out somewhere first.
    RejectNew,
}
