//! One of a user's sessions, for a "your devices" page.

use std::time::SystemTime;

/// One live session of a user, as [`Session::sessions`](crate::Session::sessions) and
/// [`SessionControl::list`](crate::SessionControl::list) list them, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// 32 hex digits naming the session to [`revoke`](crate::Session::revoke): a digest
    /// of its id, useless as a cookie.
    pub handle: String,
    /// When the session was created (at login).
    pub created: SystemTime,
    /// When it was last used, to within the touch interval.
    pub last_seen: SystemTime,
    /// When it ends unless used again (the idle or the absolute expiry).
    pub expires: SystemTime,
    /// The client IP that created it, if known.
    pub ip: Option<String>,
    /// The `User-Agent` that created it (at most 256 bytes), if sent.
    pub user_agent: Option<String>,
    /// True for the session of the request that asked.
    pub current: bool,
}
