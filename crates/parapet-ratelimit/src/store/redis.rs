//! The Redis store: one `EVALSHA` per decision.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parapet_core::redis::{self, Script, ScriptInvocation};
use parapet_core::{Clock, HashTag, KeyPrefix, RedisHandle, StoreError};

use super::{RateLimitStore, StoreCall};
use crate::{Decision, Outcome, PolicySet, PolicyState, Subject};

static GCRA: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("now.lua"), include_str!("gcra.lua"))));
static MARK: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("now.lua"), include_str!("mark.lua"))));

/// The key kind of every rate-limit key: `{prefix}:rl:{tag}:…`.
const KIND: &str = "rl";

/// The default deadline of one decision.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// Rate-limit state in Redis (standalone or Cluster), shared by every instance.
///
/// - One `EVALSHA` per decision, whatever the number of policies, bans and allow entries:
///   all are read and written by one Lua script ([`redis::Script`] reloads it after
///   `NOSCRIPT`, so a restart or `SCRIPT FLUSH` never reaches a client).
/// - Time comes from `redis.call('TIME')`, so instances with skewed clocks agree.
/// - Keys: `{prefix}:rl:{sha256(subject)}:{policy}.{interval}x{burst}`, plus `…:ban` and
///   `…:allow`. The hash tag puts every key of a subject in one Cluster slot; every key has
///   a TTL (`PX`) equal to the time its state matters.
/// - Each call has a deadline (default 50 ms); see `OnStoreError` for what happens past it.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use parapet_core::RedisHandle;
/// use parapet_ratelimit::RedisStore;
///
/// let redis = RedisHandle::builder("redis://127.0.0.1:6379").build().await?;
/// let store = RedisStore::new(redis);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    redis: RedisHandle,
    prefix: KeyPrefix,
    clock: Option<Arc<dyn Clock>>,
}

impl RedisStore {
    /// A store on `redis`, with key prefix `parapet` and a 50 ms deadline per call.
    pub fn new(redis: RedisHandle) -> Self {
        Self {
            redis: redis.with_timeout(DEFAULT_TIMEOUT),
            prefix: KeyPrefix::default(),
            clock: None,
        }
    }

    /// The first part of every key (default `parapet`).
    #[must_use]
    pub fn prefix(mut self, prefix: KeyPrefix) -> Self {
        self.prefix = prefix;
        self
    }

    /// The deadline of one call (default 50 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.redis = self.redis.with_timeout(timeout);
        self
    }

    /// Takes "now" from `clock` instead of Redis `TIME`.
    ///
    /// For differential tests against [`MemoryStore`](crate::MemoryStore) only: in
    /// production, instances must share the server's clock.
    #[doc(hidden)]
    #[must_use]
    pub fn with_test_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    fn key(&self, tag: &HashTag, suffix: &str) -> String {
        self.prefix.key(KIND, tag, suffix)
    }

    /// The now argument (ARGV[2]) of `now.lua`: empty for Redis `TIME`, or the test clock.
    fn push_now(&self, invocation: &mut ScriptInvocation<'_>) {
        match &self.clock {
            Some(clock) => invocation.arg(clock.now_micros()),
            None => invocation.arg(""),
        };
    }

    /// Marks `subject` as banned or allow-listed (`suffix`) for `duration`, or unmarks it.
    fn mark(&self, subject: &Subject, suffix: &str, duration: Option<Duration>) -> StoreCall<()> {
        let key = self.key(&subject.hash_tag(), suffix);
        let redis = self.redis.clone();
        let Some(duration) = duration else {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(key);
            return StoreCall::boxed(async move { redis.query::<()>(&cmd).await });
        };
        let mut invocation = MARK.prepare_invoke();
        // At least 1 µs; at most ten years, so the end stays an exact Lua integer.
        let micros = u64::try_from(duration.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 315_360_000_000_000);
        invocation.key(key).arg(micros);
        self.push_now(&mut invocation);
        StoreCall::boxed(async move { redis.eval::<()>(&invocation).await })
    }
}

impl RateLimitStore for RedisStore {
    fn check(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<Decision> {
        let tag = subject.hash_tag();
        let mut invocation = GCRA.prepare_invoke();
        invocation
            .key(self.key(&tag, "allow"))
            .key(self.key(&tag, "ban"));
        for policy in policies.policies() {
            invocation.key(self.key(&tag, policy.key_suffix()));
        }
        invocation.arg(cost);
        self.push_now(&mut invocation);
        for policy in policies.policies() {
            let limit = policy.limit();
            invocation.arg(limit.interval).arg(limit.burst);
        }
        let redis = self.redis.clone();
        let expected = policies.policies().len();
        StoreCall::boxed(async move {
            let reply: Vec<i64> = redis.eval(&invocation).await?;
            parse_reply(&reply, expected)
        })
    }

    fn reset(&self, subject: &Subject, policies: &PolicySet) -> StoreCall<()> {
        let tag = subject.hash_tag();
        let mut cmd = redis::cmd("DEL");
        for policy in policies.policies() {
            cmd.arg(self.key(&tag, policy.key_suffix()));
        }
        let redis = self.redis.clone();
        StoreCall::boxed(async move { redis.query::<()>(&cmd).await })
    }

    fn ban(&self, subject: &Subject, duration: Duration) -> StoreCall<()> {
        self.mark(subject, "ban", Some(duration))
    }

    fn unban(&self, subject: &Subject) -> StoreCall<()> {
        self.mark(subject, "ban", None)
    }

    fn allow(&self, subject: &Subject, duration: Duration) -> StoreCall<()> {
        self.mark(subject, "allow", Some(duration))
    }

    fn unallow(&self, subject: &Subject) -> StoreCall<()> {
        self.mark(subject, "allow", None)
    }

    fn is_remote(&self) -> bool {
        true
    }
}

fn parse_reply(reply: &[i64], policies: usize) -> Result<Decision, StoreError> {
    let bad = || StoreError::UnexpectedReply("rate-limit script reply of the wrong shape");
    let (&status, rest) = reply.split_first().ok_or_else(bad)?;
    let (&retry_after, states) = rest.split_first().ok_or_else(bad)?;
    match status {
        3 => return Ok(Decision::allow_listed()),
        2 => return Ok(Decision::banned(micros(retry_after))),
        0 | 1 => {}
        _ => return Err(bad()),
    }
    if states.len() != policies * 3 {
        return Err(bad());
    }
    let allowed = status == 0;
    Ok(Decision {
        outcome: if allowed {
            Outcome::Allowed
        } else {
            Outcome::Limited
        },
        retry_after: (!allowed).then(|| micros(retry_after)),
        states: states
            .chunks_exact(3)
            .map(|s| PolicyState {
                remaining: u64::try_from(s[0]).unwrap_or(0),
                reset_after: micros(s[1]),
                retry_after: (s[2] > 0).then(|| micros(s[2])),
            })
            .collect(),
    })
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.redis)
            .field("prefix", &self.prefix)
            .finish()
    }
}
