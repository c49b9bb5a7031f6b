//! One policy's state after a decision.

use std::time::Duration;

/// What a decision left of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyState {
    /// Requests (cost units) still available right now.
    pub remaining: u64,
    /// Time until the policy is fully replenished.
    pub reset_after: Duration,
    /// When this policy refused the request: time until it would admit it.
    pub retry_after: Option<Duration>,
}
