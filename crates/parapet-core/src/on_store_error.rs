//! What a middleware does when its store fails.

/// The policy a middleware follows when a store call fails or misses its deadline.
///
/// Each middleware documents which variants it accepts and its default; an unsupported choice
/// is a build-time error. The rate limiter accepts all three and defaults to
/// [`FailOpen`](Self::FailOpen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Let the request through as if the store had said yes; warn and count it.
    #[default]
    FailOpen,
    /// Refuse the request with `503 Service Unavailable` and `Retry-After`.
    FailClosed,
    /// Decide with a local, in-process substitute until the store answers again.
    Fallback,
}

impl OnStoreError {
    /// A stable label for metrics: `fail_open`, `fail_closed`, `fallback`.
    pub fn label(self) -> &'static str {
        match self {
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
            Self::Fallback => "fallback",
        }
    }
}
