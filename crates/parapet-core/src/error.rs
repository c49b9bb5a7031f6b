//! What a store call can fail with.

use std::time::Duration;

/// A failed call to a store (Redis), or an invalid store configuration.
///
/// Messages never contain keys, tokens or session ids: keys are hashes of user data and a
/// reply is described by its kind only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The call did not finish within its deadline.
    #[error("store call did not finish within its {0:?} deadline")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("redis call failed")]
    Redis(#[from] redis::RedisError),
    /// No pooled connection could be had.
    #[error("no redis connection could be taken from the pool")]
    Pool(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Redis answered with something the caller did not expect.
    #[error("unexpected reply from the store: {0}")]
    UnexpectedReply(&'static str),
    /// The store could not be built from its configuration.
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
}

impl StoreError {
    /// A short, stable label for metrics: `timeout`, `redis`, `pool`, `reply`, `config`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Redis(_) => "redis",
            Self::Pool(_) => "pool",
            Self::UnexpectedReply(_) => "reply",
            Self::InvalidConfig(_) => "config",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_kinds_stable() {
        let e = StoreError::Timeout(Duration::from_millis(25));
        assert_eq!(
            e.to_string(),
            "store call did not finish within its 25ms deadline"
        );
        assert_eq!(e.kind(), "timeout");
        let e = StoreError::UnexpectedReply("array of 3 integers");
        assert!(e.to_string().starts_with("unexpected reply"));
        assert_eq!(e.kind(), "reply");
    }
}
