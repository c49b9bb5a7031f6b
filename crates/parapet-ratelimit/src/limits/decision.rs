//! What the limiter decided for one request.

use std::time::Duration;

use crate::PolicyState;

/// The answer to one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Admitted, refused, and why.
    pub outcome: Outcome,
    /// When refused: the time after which the same request is admitted (exact; the
    /// `Retry-After` header rounds it up to whole seconds).
    pub retry_after: Option<Duration>,
    /// One entry per policy of the set, in order (empty for bans and allow-listed keys).
    pub states: Vec<PolicyState>,
}

/// Why a request was admitted or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Every policy admitted it, and each was charged.
    Allowed,
    /// At least one policy refused it; none was charged.
    Limited,
    /// The key is banned.
    Banned,
    /// The key is on the allow list: no policy applies.
    AllowListed,
}

impl Outcome {
    /// A stable label for metrics: `allowed`, `limited`, `banned`, `allow_listed`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Limited => "limited",
            Self::Banned => "banned",
            Self::AllowListed => "allow_listed",
        }
    }

    /// True when the request may go on.
    pub fn is_admitted(self) -> bool {
        matches!(self, Self::Allowed | Self::AllowListed)
    }
}

impl Decision {
    pub(crate) fn banned(for_: Duration) -> Self {
        Self {
            outcome: Outcome::Banned,
            retry_after: Some(for_),
            states: Vec::new(),
        }
    }

    pub(crate) fn allow_listed() -> Self {
        Self {
            outcome: Outcome::AllowListed,
            retry_after: None,
            states: Vec::new(),
        }
    }
}
