//! What a store call can fail with.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

type Source = Box<dyn Error + Send + Sync>;

/// One cause behind several errors ([`StoreError::shared`]): shows and chains as the cause.
#[derive(Debug, Clone)]
struct Shared(Arc<dyn Error + Send + Sync>);

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Error for Shared {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// A failed call to a store (Redis), or an invalid store configuration or argument.
///
/// `Display` carries the cause (`redis call failed: Connection refused (os error 111)`), so
/// one log line says what went wrong. Messages never contain keys, tokens, session ids or
/// passwords: keys are hashes of user data, URLs are shown with their password replaced,
/// and a reply is described by its kind only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The call did not finish within its deadline. It was sent, and Redis **may still
    /// apply it**.
    #[error("store call did not finish within its {0:?} deadline (it may still be applied)")]
    Timeout(Duration),
    /// Redis is out of memory (`maxmemory` reached with the `noeviction` policy) and
    /// refuses writes.
    #[error("redis is out of memory and refuses writes (maxmemory): {0}")]
    OutOfMemory(#[source] Source),
    /// Redis answered with an error, or the connection failed.
    #[error("redis call failed: {0}")]
    Redis(#[source] Source),
    /// No pooled connection could be had.
    #[error("no redis connection could be taken from the pool: {0}")]
    Pool(#[source] Source),
    /// Redis answered with something the caller did not expect.
    #[error("unexpected reply from the store: {0}")]
    UnexpectedReply(&'static str),
    /// The store could not be built from its configuration.
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
    /// An in-process store is full and its policy is to refuse new entries rather than
    /// evict live ones.
    #[error("in-process store is full: {0}")]
    CapacityExceeded(&'static str),
    /// A store operation was called with an argument it cannot take (a cost above every
    /// burst, a zero duration).
    #[error("invalid store argument: {0}")]
    InvalidArgument(&'static str),
    /// A failure of a call several callers share (a batch of decisions), as one of them
    /// sees it: the same kind, message and cause as the failure itself
    /// ([`into_original`](Self::into_original)), and counted once for the whole call
    /// ([`claim`](Self::claim)).
    #[error(transparent)]
    InSharedCall(Box<SharedFailure>),
}

/// A call several callers share (a batch of decisions): however many of them see its
/// failure, it is counted once. Cheap to clone: each caller holds one.
#[derive(Debug, Clone, Default)]
pub struct SharedCall(Arc<AtomicBool>);

/// The failure of a [`SharedCall`] as one of its callers sees it.
#[derive(Debug)]
pub struct SharedFailure {
    error: StoreError,
    call: SharedCall,
}

impl fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl Error for SharedFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.source()
    }
}

impl StoreError {
    /// A short, stable label for metrics: `timeout`, `oom`, `redis`, `pool`, `reply`,
    /// `config`, `capacity`, `argument`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::OutOfMemory(_) => "oom",
            Self::Redis(_) => "redis",
            Self::Pool(_) => "pool",
            Self::UnexpectedReply(_) => "reply",
            Self::InvalidConfig(_) => "config",
            Self::CapacityExceeded(_) => "capacity",
            Self::InvalidArgument(_) => "argument",
            Self::InSharedCall(failure) => failure.error.kind(),
        }
    }

    /// This failure as a caller of `call` sees it: every caller of one call gets its own,
    /// and the call's failure is counted once between them.
    pub fn in_shared_call(self, call: &SharedCall) -> Self {
        match self {
            Self::InSharedCall(_) => self,
            error => Self::InSharedCall(Box::new(SharedFailure {
                error,
                call: call.clone(),
            })),
        }
    }

    /// Whether the caller holding this failure is the one to count it (in a circuit
    /// breaker, say): yes for any failure, but of the callers of one [`SharedCall`] only
    /// the first to ask.
    pub fn claim(&self) -> bool {
        match self {
            Self::InSharedCall(failure) => !failure.call.0.swap(true, Ordering::AcqRel),
            _ => true,
        }
    }

    /// The failure itself, out of its [`InSharedCall`](Self::InSharedCall) wrapping.
    pub fn into_original(self) -> StoreError {
        match self {
            Self::InSharedCall(failure) => failure.error,
            other => other,
        }
    }

    /// The same failure for each of `n` callers of one shared call (a batch of decisions
    /// sent together): each gets the same kind and message, with the cause shared.
    pub fn shared(self, n: usize) -> Vec<StoreError> {
        let source = |source: Source| Shared(Arc::from(source));
        match self {
            Self::OutOfMemory(s) => {
                let s = source(s);
                (0..n)
                    .map(|_| Self::OutOfMemory(Box::new(s.clone())))
                    .collect()
            }
            Self::Redis(s) => {
                let s = source(s);
                (0..n).map(|_| Self::Redis(Box::new(s.clone()))).collect()
            }
            Self::Pool(s) => {
                let s = source(s);
                (0..n).map(|_| Self::Pool(Box::new(s.clone()))).collect()
            }
            Self::Timeout(d) => (0..n).map(|_| Self::Timeout(d)).collect(),
            Self::UnexpectedReply(m) => (0..n).map(|_| Self::UnexpectedReply(m)).collect(),
            Self::InvalidConfig(m) => (0..n).map(|_| Self::InvalidConfig(m.clone())).collect(),
            Self::CapacityExceeded(m) => (0..n).map(|_| Self::CapacityExceeded(m)).collect(),
            Self::InvalidArgument(m) => (0..n).map(|_| Self::InvalidArgument(m)).collect(),
            Self::InSharedCall(failure) => {
                let SharedFailure { error, call } = *failure;
                error
                    .shared(n)
                    .into_iter()
                    .map(|copy| copy.in_shared_call(&call))
                    .collect()
            }
        }
    }

    pub(crate) fn from_redis(error: redis::RedisError) -> Self {
        if error.code() == Some("OOM") {
            Self::OutOfMemory(Box::new(error))
        } else {
            Self::Redis(Box::new(error))
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
            "store call did not finish within its 25ms deadline (it may still be applied)"
        );
        assert_eq!(e.kind(), "timeout");
        let e = StoreError::UnexpectedReply("array of 3 integers");
        assert!(e.to_string().starts_with("unexpected reply"));
        assert_eq!(e.kind(), "reply");
    }

    #[test]
    fn a_shared_failure_keeps_its_kind_message_and_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused here");
        let errors = StoreError::from_redis(redis::RedisError::from(io)).shared(3);
        assert_eq!(errors.len(), 3);
        for e in &errors {
            assert_eq!(e.kind(), "redis");
            assert!(e.to_string().contains("refused here"), "{e}");
        }
        let timeouts = StoreError::Timeout(Duration::from_millis(7)).shared(2);
        assert!(
            timeouts
                .iter()
                .all(|e| matches!(e, StoreError::Timeout(d) if *d == Duration::from_millis(7)))
        );
        assert!(StoreError::Timeout(Duration::ZERO).shared(0).is_empty());
    }

    #[test]
    fn a_shared_calls_failure_reads_as_itself_and_is_claimed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused here");
        let original = StoreError::from_redis(redis::RedisError::from(io));
        let message = original.to_string();
        let call = SharedCall::default();
        let seen: Vec<StoreError> = original
            .shared(3)
            .into_iter()
            .map(|e| e.in_shared_call(&call))
            .collect();
        for e in &seen {
            assert_eq!(e.kind(), "redis");
            assert_eq!(e.to_string(), message);
            assert!(e.source().is_some());
        }
        // The third asks first: it counts; the others do not, whatever their order.
        assert!(seen[2].claim());
        assert!(!seen[0].claim());
        assert!(!seen[1].claim());
        // A caller's own timeout in the same call counts with it.
        let own = StoreError::Timeout(Duration::from_millis(5)).in_shared_call(&call);
        assert!(!own.claim());
        // Another call's failure counts again; a plain failure always.
        let other =
            StoreError::Timeout(Duration::from_millis(5)).in_shared_call(&SharedCall::default());
        assert!(other.claim());
        assert!(StoreError::Timeout(Duration::ZERO).claim());
        let original = seen.into_iter().next().unwrap().into_original();
        assert!(matches!(original, StoreError::Redis(_)));
        assert_eq!(original.to_string(), message);
    }

    #[test]
    fn the_cause_is_in_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused here");
        let e = StoreError::from_redis(redis::RedisError::from(io));
        assert_eq!(e.kind(), "redis");
        assert!(e.to_string().contains("refused here"), "{e}");
        assert!(e.source().is_some());
    }
}

/// A configuration value that cannot be used (a malformed CIDR, an out-of-range setting).
/// Returned when a layer is built, never at request time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);
