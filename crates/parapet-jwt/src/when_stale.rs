//! What the guard does while its revocation replica cannot be confirmed current.

/// The policy while the replica of a Redis-backed [`Revocations`](crate::Revocations) cannot
/// be confirmed current: its subscription is down, or its last confirmation is older than
/// the staleness bound. A token the replica knows to be revoked is refused under every
/// policy; the policy decides about the others. Each case is counted in
/// `parapet_jwt_stale_total{policy}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenStale {
    /// Refuse with 503 and `Retry-After: 1` (the default: a revocation must not be missed).
    #[default]
    FailClosed,
    /// Ask Redis for this token (one script call within the store deadline); refuse with
    /// 503 if Redis does not answer in time.
    CheckStore,
    /// Let the token through on what the replica knew.
    FailOpen,
}

impl WhenStale {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::FailClosed => "fail_closed",
            Self::CheckStore => "check_store",
            Self::FailOpen => "fail_open",
        }
    }
}
