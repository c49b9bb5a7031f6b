//! A session to create.

use crate::{Changes, OverLimit};

/// A session to create: its first fields, its user and what it records of its client.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewSession {
    /// The first data fields (`clear` and `remove` are ignored).
    pub changes: Changes,
    /// The user it is bound to: it joins that user's index.
    pub user: Option<String>,
    /// The concurrent-session limit of that user, and what to do at it.
    pub limit: Option<(u32, OverLimit)>,
    /// The client IP.
    pub ip: Option<String>,
    /// The `User-Agent`.
    pub user_agent: Option<String>,
    /// The id digest of a session of the same group (the same user logging in again) that
    /// this one replaces: it ends in the same step, and does not count toward the limit.
    pub replaces: Option<[u8; 16]>,
}
