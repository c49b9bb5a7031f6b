//! The crate's error type.

use parapet_core::{ConfigError, StoreError};

/// Why a rate limiter could not be built or a programmatic call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A policy name is not 1 to 64 characters of `A-Z a-z 0-9 _ - .`.
    #[error("policy name must be 1 to 64 characters of A-Z a-z 0-9 _ - .")]
    InvalidPolicyName,
    /// A quota's rate, period or burst is zero.
    #[error("policy {policy}: rate, period and burst must be above zero")]
    ZeroQuota {
        /// The policy's name.
        policy: String,
    },
    /// A quota allows less than one request per microsecond of precision, or spans more
    /// than ten years.
    #[error("policy {policy}: quota out of range ({reason})")]
    QuotaOutOfRange {
        /// The policy's name.
        policy: String,
        /// What is out of range.
        reason: &'static str,
    },
    /// A policy set is empty, too large, or names a policy twice.
    #[error("invalid policy set: {0}")]
    InvalidPolicySet(&'static str),
    /// The layer was built without any policy.
    #[error("no policy configured: add one with .policy(name, quota) or .resolver(...)")]
    NoPolicy,
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// A request's cost is larger than a policy's burst, so it could never be admitted.
    #[error("cost {cost} exceeds the burst of policy {policy}")]
    CostExceedsBurst {
        /// The requested cost.
        cost: u32,
        /// The policy whose burst is smaller.
        policy: String,
    },
    /// A shared setting (a trusted-proxy network) is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed (the message carries the cause).
    #[error("rate-limit store failed: {0}")]
    Store(#[source] StoreError),
}

/// So that `?` on [`Policy::new`](crate::Policy::new) and
/// [`PolicySet::new`](crate::PolicySet::new) works in code that returns the `ConfigError`
/// of every layer's `build()`.
impl From<RateLimitError> for ConfigError {
    fn from(error: RateLimitError) -> Self {
        match error {
            RateLimitError::Config(config) => config,
            other => ConfigError(other.to_string()),
        }
    }
}

impl From<StoreError> for RateLimitError {
    /// The failure itself: a repeat of a shared call's failure is told as the original.
    fn from(error: StoreError) -> Self {
        Self::Store(error.into_original())
    }
}
