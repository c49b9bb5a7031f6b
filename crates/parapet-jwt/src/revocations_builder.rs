//! Options of a [`Revocations`] handle.

use std::time::Duration;

use parapet_core::{ConfigError, KeyPrefix, RedisHandle};

use crate::WhenStale;
use crate::revocations::{Revocations, Rules};

/// Options of [`Revocations`], with their defaults:
///
/// | option | default |
/// |---|---|
/// | [`max_token_age`](Self::max_token_age) | 24 h |
/// | [`leeway`](Self::leeway) | 60 s |
/// | [`max_entries`](Self::max_entries) | 1,000,000 tokens and as many users |
/// | [`max_tokens_per_user`](Self::max_tokens_per_user) | 100 |
/// | [`trust_empty_store`](Self::trust_empty_store) (Redis) | `false` |
/// | [`staleness`](Self::staleness) (Redis) | 500 ms, heartbeat a fifth of it |
/// | [`when_stale`](Self::when_stale) (Redis) | [`WhenStale::FailClosed`] |
/// | [`timeout`](Self::timeout) (Redis) | 100 ms |
/// | [`prefix`](Self::prefix) (Redis) | `parapet` |
#[derive(Debug, Clone)]
pub struct RevocationsBuilder {
    pub(crate) rules: Rules,
    pub(crate) staleness: Duration,
    pub(crate) when_stale: WhenStale,
    pub(crate) timeout: Duration,
    pub(crate) prefix: String,
    pub(crate) trust_empty: bool,
}

impl Default for RevocationsBuilder {
    fn default() -> Self {
        Self {
            rules: Rules {
                max_age_ms: 24 * 3_600_000,
                leeway_ms: 60_000,
                max_entries: 1_000_000,
                max_per_user: 100,
            },
            staleness: Duration::from_millis(500),
            when_stale: WhenStale::FailClosed,
            timeout: Duration::from_millis(100),
            prefix: "parapet".to_owned(),
            trust_empty: false,
        }
    }
}

impl RevocationsBuilder {
    /// The longest a token may live after its `iat`. A user or global revocation has to be
    /// remembered for as long as a token issued before it may be presented, so the guard
    /// refuses tokens older than this (`invalid_token`), and epochs are forgotten after it.
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.rules.max_age_ms = millis(age);
        self
    }

    /// Added to a revoked token's end before it is forgotten; the guard's clock leeway must
    /// not exceed it.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.rules.leeway_ms = millis(leeway);
        self
    }

    /// The most revoked tokens (and, separately, users) held at once. A revocation past it
    /// is widened, never dropped: a token's revocation revokes its user, a user's revokes
    /// every token issued so far (see [`Revocations`]). A revoked token costs about 40
    /// bytes in each replica, a revoked user up to about 600 (`sub` is at most 512 bytes).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.rules.max_entries = n;
        self
    }

    /// The most revoked tokens one subject (`sub`) holds in the token set at once (a token
    /// stops counting when it would have expired anyway: an app that revokes the old token
    /// at each refresh holds only the few not yet expired); the next revocation of one of
    /// their tokens revokes the subject instead (every token of theirs issued so far). Keeps
    /// one account logging in and out in a loop from filling the set that every user shares.
    pub fn max_tokens_per_user(mut self, n: usize) -> Self {
        self.rules.max_per_user = n;
        self
    }

    /// Whether an empty Redis (no generation marker) may be trusted as a first start (Redis).
    ///
    /// By default it is not: a Redis restarted without its data, flushed, or whose
    /// revocation keys were evicted looks exactly like a new one, so an instance that finds
    /// no marker writes one and refuses every token issued before it. The cost is a
    /// one-time re-login of everyone on the very first start. Set `true` only when your
    /// Redis cannot lose data unnoticed (AOF with `appendfsync always`, no eviction); a
    /// running instance that sees the marker change still refuses the older tokens.
    pub fn trust_empty_store(mut self, trust: bool) -> Self {
        self.trust_empty = trust;
        self
    }

    /// How old the replica's last confirmation may be before it counts as stale (Redis).
    pub fn staleness(mut self, bound: Duration) -> Self {
        self.staleness = bound;
        self
    }

    /// The policy while the replica is stale (Redis).
    pub fn when_stale(mut self, policy: WhenStale) -> Self {
        self.when_stale = policy;
        self
    }

    /// The deadline of every Redis call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The prefix of the Redis keys and channel (`{prefix}:jwt:…`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.rules.max_age_ms == 0 || self.rules.max_entries == 0 || self.rules.max_per_user == 0
        {
            return Err(ConfigError(
                "max_token_age, max_entries and max_tokens_per_user must be positive".into(),
            ));
        }
        if self.rules.max_age_ms > 400 * 86_400_000 || self.rules.leeway_ms > 3_600_000 {
            return Err(ConfigError(
                "max_token_age is at most 400 days and leeway at most an hour".into(),
            ));
        }
        Ok(())
    }

    /// Revocations held in this process only: one instance, or tests.
    pub fn memory(self) -> Result<Revocations, ConfigError> {
        self.check()?;
        Ok(Revocations::new_memory(self.rules))
    }

    /// Revocations kept in Redis (standalone or Cluster) and replicated to every instance.
    /// Called inside a Tokio runtime, the replica starts loading at once; otherwise at the
    /// first request. Await [`Revocations::wait_current`] at start so that the first
    /// requests do not meet the staleness policy.
    pub fn redis(self, redis: RedisHandle) -> Result<Revocations, ConfigError> {
        self.check()?;
        if self.timeout.is_zero() || self.staleness < Duration::from_millis(10) {
            return Err(ConfigError(
                "the Redis timeout must be positive and the staleness bound at least 10 ms".into(),
            ));
        }
        let prefix = KeyPrefix::new(self.prefix.clone()).map_err(|e| ConfigError(e.to_string()))?;
        let redis = redis
            .with_timeout(self.timeout)
            .map_err(|e| ConfigError(e.to_string()))?;
        Revocations::new_redis(self, redis, prefix)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
