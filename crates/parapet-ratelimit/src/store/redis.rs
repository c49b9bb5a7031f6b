//! The Redis store: one `EVALSHA` per decision at most, shared by decisions that arrive
//! together.

use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use parapet_core::fanout::Event;
use parapet_core::{
    Clock, FanOut, HashTag, KeyPrefix, KeySecret, Keyspace, RedisHandle, Script, ScriptCall,
    StoreCall, StoreError,
};

use super::batch::{self, Batcher, GCRA};
use super::{RateLimitStore, check_cost, check_duration};
use crate::{Algorithm, Decision, Outcome, PolicySet, PolicyState, Subject};

static MARK: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("now.lua"), include_str!("mark.lua"))));
static FORGET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("forget.lua")));
static REFUND: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("now.lua"), include_str!("refund.lua"))));

/// The key kind of every rate-limit key: `{prefix}:rl:{tag}:…`.
const KIND: &str = "rl";

/// The default deadline of one decision.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// Rate-limit state in Redis (standalone or Cluster), shared by every instance.
///
/// - One `EVALSHA` per decision at most, whatever the number of policies, bans and allow
///   entries: all are read and written by one Lua script (sent again with `EVAL` on the same
///   node after `NOSCRIPT`, so a restart or `SCRIPT FLUSH` never reaches a client).
/// - **Batching**: decisions that arrive together go in one call. A task per store (started
///   by the first decision) takes the decisions queued while its calls were outstanding (at
///   most 8 at once on standalone Redis; 64 decisions and 4,096 sliding-window cells a call)
///   and sends them as one call, which decides them in order, each all or nothing, at one
///   Redis `TIME`, reading and writing each string key once. There is no timer: a decision
///   that finds the task idle goes out after one yield to the scheduler. Redis spends a
///   fixed price per call (parsing, the Lua call, `TIME`, the reply) and the app one per
///   round trip, so this lowers both: in the load harness (32 connections on one key),
///   about 7 decisions per call, 6.7 µs of Redis CPU per decision against 13.3 µs
///   unbatched, and 1.4× the throughput; on 32 keys, 1.3× (BENCHMARKS.md §14). The wait
///   in the queue counts against the deadline, and a decision whose caller gave up before
///   it was sent is dropped uncharged. A decision that fails on its own keys (a sliding
///   window's key of another type) fails alone; a string state the script never writes
///   (text, `inf`) reads as none. A failed call (timeout, connection, out of memory) fails
///   each of its decisions with the same error (or the decision's own timeout, if that
///   comes first) as a [`StoreError::InSharedCall`], which reads as the error itself
///   (`kind`, message, cause; `into_original`) and which the limiter's circuit breaker
///   counts once per call ([`StoreError::claim`]); `OnStoreError` applies to each. On Cluster, where a call's keys must share a slot, a
///   call holds the decisions of one subject. A standalone batch mixes subjects: behind a proxy that routes a call by its
///   first key, use [`unbatched`](Self::unbatched), which sends one call per decision.
/// - Time comes from `redis.call('TIME')`, so instances with skewed clocks agree.
/// - Keys: `{prefix}:rl:{sha256(subject)}:{policy}.{interval}x{burst}` (for a window, its
///   length in place of the interval, and `.fw` for a fixed window, `.sw` for a sliding
///   window's sorted set of at most `burst` cells), plus `…:ban` and `…:allow`. The hash
///   tag puts every key of a subject in one Cluster slot; every key has a TTL (`PX`) equal
///   to the time its state matters.
/// - Keys hold a SHA-256 of the subject, or an HMAC-SHA-256 with
///   [`key_secret`](Self::key_secret): without a secret, a Redis dump of IP-keyed limits can
///   be turned back into client addresses by hashing every IPv4 address.
/// - `reset`, `ban`, `unban`, `allow` and `unallow` are announced on the channel
///   `{prefix}:rl:changes` by the script that makes them (the fan-out of `parapet-core`),
///   and every instance empties its deny cache within milliseconds.
/// - Each call has a deadline (default 50 ms, never more than the handle's own); see
///   `OnStoreError` for what happens past it. A batched decision's deadline counts from
///   when it is asked for, its wait in the queue included. A call that misses it may
///   still be applied.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use parapet_core::RedisHandle;
/// use parapet_ratelimit::RedisStore;
///
/// let redis = RedisHandle::builder("redis://127.0.0.1:6379").build().await?;
/// let store = RedisStore::new(redis)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    redis: RedisHandle,
    keyspace: Keyspace,
    clock: Option<Arc<dyn Clock>>,
    /// False with [`unbatched`](Self::unbatched).
    batching: bool,
    /// Where decisions are queued to be sent in batches: started by the first decision
    /// (on its Tokio runtime), shared by the store's clones.
    batcher: Arc<OnceLock<Batcher>>,
}

impl RedisStore {
    /// A store on `redis`, with key prefix `parapet` and a deadline per call of 50 ms (or
    /// the handle's own, if shorter).
    ///
    /// Within a Tokio runtime, the store's scripts are loaded into the server's script
    /// cache in the background (`SCRIPT LOAD`), so the first burst of decisions does not
    /// meet `NOSCRIPT`; should that fail, calls load them themselves (`EVAL`).
    pub fn new(redis: RedisHandle) -> Result<Self, StoreError> {
        let timeout = DEFAULT_TIMEOUT.min(redis.timeout());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let redis = redis.clone();
            runtime.spawn(async move {
                for script in [&*GCRA, &*MARK, &*FORGET, &*REFUND] {
                    if redis.load_script(script).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Self {
            redis: redis.with_timeout(timeout)?,
            keyspace: Keyspace::default(),
            clock: None,
            batching: true,
            batcher: Arc::default(),
        })
    }

    /// Sends every decision in a call of its own instead of batching the decisions that
    /// arrive together (the default; see "Batching" above): for measurements, or to keep
    /// each decision's failure apart from the others'.
    #[must_use]
    pub fn unbatched(mut self) -> Self {
        self.batching = false;
        self
    }

    /// The store's batcher, started on the current runtime by the first decision; `None`
    /// when batching is off or there is no runtime (the decision is then sent on its own).
    fn batcher(&self) -> Option<&Batcher> {
        if !self.batching {
            return None;
        }
        if let Some(batcher) = self.batcher.get() {
            return Some(batcher);
        }
        // Two first decisions at once may both start one: the loser's ends with its queue.
        let started = Batcher::start(self.redis.clone())?;
        Some(self.batcher.get_or_init(|| started))
    }

    /// The first part of every key (default `parapet`).
    #[must_use]
    pub fn prefix(mut self, prefix: KeyPrefix) -> Self {
        self.keyspace = self.keyspace.with_prefix(prefix);
        self
    }

    /// Keys hold an HMAC-SHA-256 of the subject under `secret` instead of a plain SHA-256,
    /// so a Redis dump does not reveal client addresses, user ids or API keys. Every instance
    /// sharing the Redis needs the same secret; changing it starts every limit afresh.
    #[must_use]
    pub fn key_secret(mut self, secret: KeySecret) -> Self {
        self.keyspace = self.keyspace.with_secret(secret);
        self
    }

    /// The deadline of one call (default 50 ms): above zero and at most the handle's own
    /// deadline, or an error.
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, StoreError> {
        self.redis = self.redis.with_timeout(timeout)?;
        // Batches are sent with the store's deadline: a new one needs its own batcher.
        self.batcher = Arc::default();
        Ok(self)
    }

    /// Takes "now" from `clock` instead of Redis `TIME`.
    ///
    /// For differential tests against [`MemoryStore`](crate::MemoryStore) only: in
    /// production, instances must share the server's clock. Redis still expires keys on its
    /// own clock, so under a test clock every key lives ten minutes past its state's end
    /// (the scripts decide expiry by the stored numbers, never by a key's absence).
    #[doc(hidden)]
    #[must_use]
    pub fn with_test_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    fn tag(&self, subject: &Subject) -> HashTag {
        self.keyspace.tag(subject.as_bytes())
    }

    fn key(&self, tag: &HashTag, suffix: &str) -> String {
        self.keyspace.key(KIND, tag, suffix)
    }

    /// The now argument (ARGV[2]) of `now.lua`: empty for Redis `TIME`, or the test clock.
    fn push_now(&self, call: &mut ScriptCall) {
        match &self.clock {
            Some(clock) => call.arg(clock.now_micros()),
            None => call.arg(""),
        };
    }

    /// The channel every change of this store's shared state is announced on.
    fn channel(&self) -> String {
        self.keyspace.name(KIND, "changes")
    }

    /// Marks `subject` as banned or allow-listed (`suffix`) for `duration`, or unmarks it;
    /// announced to every instance in the same script.
    fn mark(&self, subject: &Subject, suffix: &str, duration: Option<Duration>) -> StoreCall<()> {
        let tag = self.tag(subject);
        let key = self.key(&tag, suffix);
        let Some(duration) = duration else {
            return self.forget(&tag, [key]);
        };
        let micros = match check_duration(duration) {
            Ok(micros) => micros,
            Err(e) => return StoreCall::ready(Err(e)),
        };
        let mut call = MARK.call(1);
        call.key(key).arg(micros);
        self.push_now(&mut call);
        call.arg(self.channel()).arg(tag.to_string());
        let redis = self.redis.clone();
        StoreCall::boxed(async move { redis.eval::<()>(&call).await })
    }

    /// Deletes `keys` of the subject tagged `tag`, announced in the same script.
    fn forget(&self, tag: &HashTag, keys: impl IntoIterator<Item = String>) -> StoreCall<()> {
        let keys: Vec<String> = keys.into_iter().collect();
        let mut call = FORGET.call(keys.len());
        for key in keys {
            call.key(key);
        }
        call.arg(self.channel()).arg(tag.to_string());
        let redis = self.redis.clone();
        StoreCall::boxed(async move { redis.eval::<()>(&call).await })
    }
}

impl RateLimitStore for RedisStore {
    fn check(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<Decision> {
        if let Err(e) = check_cost(policies, cost) {
            return StoreCall::ready(Err(e));
        }
        let tag = self.tag(subject);
        let n = policies.policies().len();
        let mut keys = Vec::with_capacity(2 + n);
        keys.push(self.key(&tag, "allow"));
        keys.push(self.key(&tag, "ban"));
        let mut args = Vec::with_capacity(2 + 3 * n);
        args.push(n as i64); // a policy set holds a handful of policies
        args.push(i64::from(cost));
        // The sliding-window cells the decision adds: its cost per sliding policy.
        let mut cells = 0;
        for policy in policies.policies() {
            keys.push(self.key(&tag, policy.key_suffix()));
            let limit = policy.limit();
            // The algorithm, the span (interval or window), the burst: negative for a
            // shadow policy (gcra.lua).
            let (algorithm, span) = match limit.algorithm {
                Algorithm::Gcra => (0, limit.interval),
                Algorithm::FixedWindow => (1, limit.window),
                Algorithm::SlidingWindow => {
                    cells += u64::from(cost);
                    (2, limit.window)
                }
            };
            let burst = if limit.shadow {
                -limit.burst
            } else {
                limit.burst
            };
            args.extend([algorithm, span, burst]);
        }
        let call = batch::Call {
            tag,
            now: batch::now_of(self.clock.as_ref()),
            keys,
            args,
            cells,
        };
        let call = match self.batcher() {
            Some(batcher) => {
                // The wait in the queue counts against the call's deadline.
                let deadline = self.redis.timeout();
                let until = tokio::time::Instant::now() + deadline;
                match batcher.submit(call, until) {
                    Ok(waiting) => {
                        return StoreCall::boxed(async move {
                            let reply = waiting.reply(deadline).await?;
                            parse_reply(&reply, n)
                        });
                    }
                    Err(call) => call,
                }
            }
            None => call,
        };
        let redis = self.redis.clone();
        StoreCall::boxed(async move {
            let mut replies = batch::send(&redis, &[&call]).await?;
            parse_reply(&replies.swap_remove(0)?, n)
        })
    }

    fn refund(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<()> {
        if let Err(e) = check_cost(policies, cost) {
            return StoreCall::ready(Err(e));
        }
        let tag = self.tag(subject);
        let mut call = REFUND.call(policies.policies().len());
        for policy in policies.policies() {
            call.key(self.key(&tag, policy.key_suffix()));
        }
        call.arg(cost);
        self.push_now(&mut call);
        for policy in policies.policies() {
            call.arg(policy.limit().step());
        }
        let redis = self.redis.clone();
        StoreCall::boxed(async move { redis.eval::<()>(&call).await })
    }

    fn reset(&self, subject: &Subject, policies: &PolicySet) -> StoreCall<()> {
        let tag = self.tag(subject);
        let keys = policies
            .policies()
            .iter()
            .map(|policy| self.key(&tag, policy.key_suffix()));
        self.forget(&tag, keys)
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

    fn changes(&self, on_change: Arc<dyn Fn() + Send + Sync>) -> Option<FanOut> {
        Some(FanOut::new(&self.redis, self.channel(), move |event| {
            // Any change, or a resync after announcements may have been missed: every
            // cached refusal may be stale.
            if matches!(event, Event::Message(_) | Event::Resync) {
                on_change();
            }
        }))
    }
}

fn parse_reply(reply: &[i64], policies: usize) -> Result<Decision, StoreError> {
    let bad = || StoreError::UnexpectedReply("rate-limit script reply of the wrong shape");
    let (&status, rest) = reply.split_first().ok_or_else(bad)?;
    let (&retry_after, states) = rest.split_first().ok_or_else(bad)?;
    match status {
        3 => return Ok(Decision::allow_listed()),
        -1 => {
            return Err(StoreError::UnexpectedReply(
                "the rate-limit script failed on this subject's keys (a key of another type?)",
            ));
        }
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
            .field("keyspace", &self.keyspace)
            .finish()
    }
}
