//! The revocation handle: revoke, and check with no round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parapet_core::fanout::Event;
use parapet_core::{
    Command, ConfigError, FanOut, HashTag, KeyPrefix, Keyspace, RedisHandle, Script, StoreCall,
    StoreError,
};

use crate::log_position::{LogPosition, log_number};
use crate::replica::{Facts, Replica, member};
use crate::{RevocationsBuilder, VerifiedToken, WhenStale};

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/prelude.lua"),
                include_str!($file)
            ))
        })
    };
}

static REVOKE_TOKEN: LazyLock<Script> = script!("scripts/revoke_token.lua");
static REVOKE_USER: LazyLock<Script> = script!("scripts/revoke_user.lua");
static REVOKE_ALL: LazyLock<Script> = script!("scripts/revoke_all.lua");
static CHECK: LazyLock<Script> = script!("scripts/check.lua");
static GENERATION: LazyLock<Script> = script!("scripts/generation.lua");
static CATCH_UP: LazyLock<Script> = script!("scripts/catch_up.lua");

/// Revocations of tokens (by issuer and `jti`), of users (every token of a `sub` issued so
/// far) and of everything (every token issued so far), for a [`JwtLayer`](crate::JwtLayer).
///
/// Every instance holds a replica of the whole set in memory, so checking a request costs
/// no network round trip. On Redis, a revocation is written, logged and announced in one
/// script; every instance applies the announcement through parapet-core's
/// [`FanOut`](parapet_core::FanOut). After a lost subscription an instance catches up from
/// the log (a stream of the last 100,000 changes, numbered, so a change missed is told from
/// one held) before it trusts its replica again, and loads the whole set only when the log
/// no longer holds everything it missed, or at start. While the replica cannot be confirmed
/// current within the staleness bound, the [`WhenStale`] policy applies; under
/// `FailClosed`, a check in the first moments of that (the subscription confirmed at most
/// twice the bound ago: a lost connection, likely back in milliseconds) waits for the
/// replica, up to the [`timeout`](RevocationsBuilder::timeout), before it refuses.
///
/// The position in the log moves only by reading the log, never by what is heard on the
/// channel, so nothing published there by anyone else can make a catch-up skip a change.
/// A current replica also reads the log every 10 seconds: a change whose announcement was
/// lost without the subscription dropping is applied within that time. Announcements are
/// the same as before the log existed, so instances of earlier versions still hear them
/// during a rolling upgrade (their own revocations are not in the log: a resync of a new
/// instance then misses those made during its gap, as before).
///
/// Memory is bounded: a revoked token is forgotten when it would have expired anyway
/// (`min(exp, iat + max_token_age) + leeway`), a user or global epoch after
/// `max_token_age`, and [`max_entries`](RevocationsBuilder::max_entries) caps the rest.
///
/// **Full means stricter, never open.** A revocation never fails for room: a token
/// revocation that finds the token set full, or its subject already at
/// [`max_tokens_per_user`](RevocationsBuilder::max_tokens_per_user), revokes the subject
/// (every token of theirs issued so far) instead; a user revocation that finds the user set
/// full, or a token revocation without a subject, revokes every token issued so far. Each
/// widening is logged and counted
/// ([`REVOCATIONS_WIDENED`](crate::metrics::REVOCATIONS_WIDENED)).
///
/// **Redis data loss is detected**, in two ways. Redis holds a generation marker, a key
/// without expiry written when its copy of the revocations began: an instance that finds
/// it changed or absent (Redis restarted without its data, flushed, the marker evicted)
/// refuses every token issued before the new generation (the global epoch moves to it) and
/// logs an error; so does an instance started afterwards. And the log of changes only ever
/// grows: an instance catching up that finds it shorter than what it has already seen
/// (Redis restored from an older snapshot, failed over to a replica that lagged, the log
/// evicted) raises the global epoch to now in Redis, for every instance. A loss that leaves
/// the subscription up (a `FLUSHALL`) is noticed at the next read of the log, within
/// 10 seconds; one that drops it (a restart), at once. What is not
/// detected: the revoked-token or user set alone evicted under a `volatile-*` policy (run
/// this Redis with `noeviction`), and a loss while no instance is running that leaves the
/// marker and the log in place. A first start on an empty Redis looks the same as a loss,
/// so it too refuses the tokens issued before it: a one-time re-login, unless you say the
/// store may be trusted when empty
/// ([`trust_empty_store`](RevocationsBuilder::trust_empty_store)).
///
/// The log holds the last 100,000 changes: about 7.5 MB of Redis for token revocations,
/// up to about 60 MB when every change names a user id of the longest (512 bytes).
///
/// Cheap to clone; clones share the replica.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    // See `retention_ms`.
    pub(crate) max_age_ms: u64,
    pub(crate) leeway_ms: u64,
    pub(crate) max_entries: usize,
    pub(crate) max_per_user: usize,
}

impl Rules {
    /// How long after its epoch a user or global revocation must be kept: a token issued
    /// just before it is accepted until `iat + max_age + leeway` (and `iat` may be `leeway`
    /// ahead of the store's clock).
    pub(crate) fn retention_ms(&self) -> u64 {
        self.max_age_ms
            .saturating_add(self.leeway_ms.saturating_mul(2))
            .saturating_add(1)
    }
}

struct Inner {
    replica: Arc<Replica>,
    rules: Rules,
    redis: Option<RedisPart>,
    /// In memory: subject -> the ends (ms) of its revoked tokens still held. On Redis a
    /// sorted set per subject holds them.
    subjects: Mutex<HashMap<Box<str>, Vec<u64>>>,
}

struct RedisPart {
    redis: RedisHandle,
    keys: Arc<Keys>,
    fanout: FanOut,
    sync: Arc<SyncState>,
    when_stale: WhenStale,
    timeout: Duration,
}

struct Keys {
    tokens: String,
    users: String,
    epoch: String,
    generation: String,
    /// The stream of the last changes, to catch up from.
    log: String,
    /// Followed by `:<subject>`: the subject's revoked tokens still held.
    subject: String,
    channel: String,
}

impl Keys {
    fn subject(&self, subject: &str) -> String {
        let mut key = String::with_capacity(self.subject.len() + 1 + subject.len());
        key.push_str(&self.subject);
        key.push(':');
        key.push_str(subject);
        key
    }
}

/// Resyncs asked for and loads completed, counted: the replica is trusted only when the
/// last load started after the last resync. And the store's generation, to notice that
/// Redis lost its data.
struct SyncState {
    resyncs: AtomicU64,
    loaded: AtomicU64,
    /// The generation marker last read (ms; 0 before the first load).
    generation: AtomicU64,
    trust_empty: bool,
    retention_ms: u64,
    /// Where the replica stands in the log.
    position: LogPosition,
    /// Held by each load or catch-up: one at a time.
    reading: tokio::sync::Mutex<()>,
    /// Woken when a load or catch-up completes.
    loaded_now: tokio::sync::Notify,
}

/// What recording a revoked token found.
enum Recorded {
    Yes,
    /// The token set is full.
    Full,
    /// The token's subject has its most revoked tokens.
    SubjectFull,
}

/// The outcome of checking a token's revocation.
pub(crate) enum Check {
    Allowed,
    Revoked,
    Unavailable,
    /// The replica is stale and the policy asks Redis.
    AskStore(StoreCall<bool>),
}

impl Revocations {
    /// Revocations in this process only, with the defaults of [`RevocationsBuilder`].
    pub fn memory() -> Self {
        Self::new_memory(RevocationsBuilder::default().rules)
    }

    /// Revocations on Redis with the defaults of [`RevocationsBuilder`].
    pub fn redis(redis: RedisHandle) -> Result<Self, ConfigError> {
        RevocationsBuilder::default().redis(redis)
    }

    /// A builder to set options.
    pub fn builder() -> RevocationsBuilder {
        RevocationsBuilder::default()
    }

    pub(crate) fn new_memory(rules: Rules) -> Self {
        Self {
            inner: Arc::new(Inner {
                replica: Arc::new(Replica::new(rules.retention_ms())),
                rules,
                redis: None,
                subjects: Mutex::default(),
            }),
        }
    }

    pub(crate) fn new_redis(
        options: RevocationsBuilder,
        redis: RedisHandle,
        prefix: KeyPrefix,
    ) -> Result<Self, ConfigError> {
        let rules = options.rules;
        let keyspace = Keyspace::new(prefix);
        // One hash tag for every key: one Cluster slot, so one script sees them all.
        let tag = HashTag::of(b"revocations");
        let keys = Arc::new(Keys {
            tokens: keyspace.key("jwt", &tag, "tokens"),
            users: keyspace.key("jwt", &tag, "users"),
            epoch: keyspace.key("jwt", &tag, "epoch"),
            generation: keyspace.key("jwt", &tag, "generation"),
            log: keyspace.key("jwt", &tag, "log"),
            subject: keyspace.key("jwt", &tag, "subject"),
            channel: keyspace.name("jwt", "revocations"),
        });
        let replica = Arc::new(Replica::new(rules.retention_ms()));
        let sync = Arc::new(SyncState {
            resyncs: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            trust_empty: options.trust_empty,
            retention_ms: rules.retention_ms(),
            position: LogPosition::default(),
            reading: tokio::sync::Mutex::new(()),
            loaded_now: tokio::sync::Notify::new(),
        });
        let handler = {
            let (replica, sync, redis, keys) =
                (replica.clone(), sync.clone(), redis.clone(), keys.clone());
            move |event: Event<'_>| match event {
                Event::Message(payload) => {
                    replica.apply(payload, unix_ms());
                    metric_len(&replica);
                }
                Event::Resync => {
                    let generation = sync.resyncs.fetch_add(1, Ordering::AcqRel) + 1;
                    if generation == 1 {
                        // Within the runtime the fan-out runs on.
                        tokio::spawn(read_the_log_now_and_then(
                            replica.clone(),
                            Arc::downgrade(&sync),
                            redis.clone(),
                            keys.clone(),
                        ));
                    }
                    tokio::spawn(reload(
                        replica.clone(),
                        Arc::downgrade(&sync),
                        redis.clone(),
                        keys.clone(),
                        generation,
                    ));
                }
                _ => {}
            }
        };
        let heartbeat = (options.staleness / 5).max(Duration::from_millis(2));
        let fanout = FanOut::with_timing(
            &redis,
            keys.channel.clone(),
            heartbeat,
            options.staleness,
            handler,
        )
        .map_err(|e| ConfigError(e.to_string()))?;
        fanout.start();
        Ok(Self {
            inner: Arc::new(Inner {
                replica,
                rules,
                subjects: Mutex::default(),
                redis: Some(RedisPart {
                    redis,
                    keys,
                    fanout,
                    sync,
                    when_stale: options.when_stale,
                    timeout: options.timeout,
                }),
            }),
        })
    }

    /// Revokes `token` (by issuer and `jti`) on every instance, until it would have expired
    /// anyway. A token without `jti` cannot be revoked alone
    /// ([`StoreError::InvalidArgument`]): revoke its user, or require `jti` in the guard.
    ///
    /// When the token set is full, or the token's subject already has
    /// [`max_tokens_per_user`](RevocationsBuilder::max_tokens_per_user) revoked tokens, the
    /// subject is revoked instead (every token of theirs issued so far); without a subject,
    /// every token is. An error therefore means the store could not be reached, never that
    /// it had no room.
    pub async fn revoke_token(&self, token: &VerifiedToken) -> Result<(), StoreError> {
        let jti = token
            .token_id()
            .ok_or(StoreError::InvalidArgument("the token has no jti"))?;
        let end_s = token
            .expires_at()
            .min(token.issued_at() + self.inner.rules.max_age_ms as f64 / 1000.0);
        self.revoke_token_of(token.issuer(), jti, end_s, token.subject())
            .await
    }

    /// Revokes the token of `issuer` and `jti` on every instance until `expires_at` (its
    /// `exp`, seconds since the Unix epoch) plus the leeway.
    ///
    /// Without the token's subject there is nothing narrower to widen to: when the token
    /// set is full, **every** token issued so far is revoked. Prefer
    /// [`revoke_token`](Self::revoke_token) when you have the token.
    pub async fn revoke_token_id(
        &self,
        issuer: Option<&str>,
        jti: &str,
        expires_at: f64,
    ) -> Result<(), StoreError> {
        self.revoke_token_of(issuer, jti, expires_at, None).await
    }

    async fn revoke_token_of(
        &self,
        issuer: Option<&str>,
        jti: &str,
        expires_at: f64,
        subject: Option<&str>,
    ) -> Result<(), StoreError> {
        if jti.is_empty() || !expires_at.is_finite() {
            return Err(StoreError::InvalidArgument(
                "a jti and a finite expiry are needed",
            ));
        }
        let rules = &self.inner.rules;
        // The guard accepts a token until `min(exp, iat + max_age) + leeway` (plus the ms it
        // is equal), and `iat` at most `leeway` ahead: no token it still accepts lives past
        // now + max_age + 2 leeway, so a far-future `exp` is not remembered for longer.
        let latest = unix_ms().saturating_add(rules.retention_ms());
        let exp_ms = (expires_at.max(0.0) * 1000.0).ceil() as u64;
        let until_ms = exp_ms.min(latest).saturating_add(rules.leeway_ms + 1);
        let member = member(issuer, jti);
        let subject = subject.filter(|s| !s.is_empty());
        let recorded = match &self.inner.redis {
            None => self.record_in_memory(&member, until_ms, subject),
            Some(part) => {
                let mut call = REVOKE_TOKEN.call(3);
                call.key(part.keys.tokens.as_str())
                    .key(part.keys.subject(subject.unwrap_or("")))
                    .key(part.keys.log.as_str())
                    .arg(member.as_slice())
                    .arg(until_ms)
                    .arg(rules.max_entries)
                    .arg(part.keys.channel.as_str())
                    .arg(if subject.is_some() {
                        rules.max_per_user
                    } else {
                        0
                    });
                let reply: i64 = part.call("revoke", &call).await?;
                match reply {
                    -1 => Recorded::Full,
                    -2 => Recorded::SubjectFull,
                    _ => {
                        // Applied here at once, not only when the announcement comes back.
                        self.inner
                            .replica
                            .revoke_member(&member, until_ms, unix_ms());
                        Recorded::Yes
                    }
                }
            }
        };
        let why = match recorded {
            Recorded::Yes => return Ok(()),
            Recorded::Full => "the token set is full",
            Recorded::SubjectFull => "the subject has its most revoked tokens",
        };
        match subject {
            Some(user) => {
                widened("token", "user", why);
                self.revoke_user(user).await
            }
            None => {
                widened("token", "all", why);
                self.revoke_all().await
            }
        }
    }

    fn record_in_memory(&self, member: &[u8], until_ms: u64, subject: Option<&str>) -> Recorded {
        let now = unix_ms();
        let replica = &self.inner.replica;
        let rules = &self.inner.rules;
        if replica.has_member(member, now) {
            replica.revoke_member(member, until_ms, now);
            return Recorded::Yes;
        }
        let mut subjects = lock(&self.inner.subjects);
        if subjects.len() >= rules.max_entries {
            subjects.retain(|_, ends| {
                ends.retain(|&end| end > now);
                !ends.is_empty()
            });
        }
        let held = subject.and_then(|s| subjects.get_mut(s)).map_or(0, |ends| {
            ends.retain(|&end| end > now);
            ends.len()
        });
        if subject.is_some() && held >= rules.max_per_user {
            return Recorded::SubjectFull;
        }
        // At most one sweep a second, however hard the cap is hit.
        if replica.len().0 >= rules.max_entries && replica.sweep_due(now) {
            replica.sweep(now);
        }
        if replica.len().0 >= rules.max_entries {
            return Recorded::Full;
        }
        replica.revoke_member(member, until_ms, now);
        if let Some(subject) = subject {
            subjects.entry(subject.into()).or_default().push(until_ms);
        }
        metric_len(replica);
        Recorded::Yes
    }

    /// Revokes every token of `user` (their `sub`) issued until now, on every instance.
    ///
    /// When the user set is full, every token issued until now is revoked instead.
    pub async fn revoke_user(&self, user: &str) -> Result<(), StoreError> {
        if user.is_empty() {
            return Err(StoreError::InvalidArgument("an empty user"));
        }
        let Some(part) = &self.inner.redis else {
            let now = unix_ms();
            let replica = &self.inner.replica;
            if replica.len().1 >= self.inner.rules.max_entries && replica.sweep_due(now) {
                replica.sweep(now);
            }
            if replica.len().1 >= self.inner.rules.max_entries && !replica.has_user(user) {
                widened("user", "all", "the user set is full");
                return self.revoke_all().await;
            }
            self.inner.replica.revoke_user(user, now, now);
            return Ok(());
        };
        let mut call = REVOKE_USER.call(2);
        call.key(part.keys.users.as_str())
            .key(part.keys.log.as_str())
            .arg(user)
            .arg(self.inner.rules.retention_ms())
            .arg(self.inner.rules.max_entries)
            .arg(part.keys.channel.as_str());
        let epoch: i64 = part.call("revoke", &call).await?;
        let Ok(epoch) = u64::try_from(epoch) else {
            widened("user", "all", "the user set is full");
            return self.revoke_all().await;
        };
        self.inner.replica.revoke_user(user, epoch, unix_ms());
        Ok(())
    }

    /// Revokes every token issued until now, of every user, on every instance.
    pub async fn revoke_all(&self) -> Result<(), StoreError> {
        let Some(part) = &self.inner.redis else {
            self.inner.replica.revoke_all(unix_ms());
            return Ok(());
        };
        let mut call = REVOKE_ALL.call(2);
        call.key(part.keys.epoch.as_str())
            .key(part.keys.log.as_str())
            .arg(self.inner.rules.retention_ms())
            .arg(part.keys.channel.as_str());
        let epoch: u64 = part.call("revoke", &call).await?;
        self.inner.replica.revoke_all(epoch);
        Ok(())
    }

    /// True when the replica reflects every revocation made until the staleness bound ago
    /// (always, in memory).
    pub fn is_current(&self) -> bool {
        self.inner.redis.as_ref().is_none_or(RedisPart::is_current)
    }

    /// Waits until the replica is current, at most `within`; returns whether it is. Call it
    /// at start so that the first requests do not meet the staleness policy.
    pub async fn wait_current(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.is_current() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Revoked tokens and revoked users the replica holds.
    pub fn len(&self) -> (usize, usize) {
        self.inner.replica.len()
    }

    /// True when the replica holds no revoked token or user.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0) && self.inner.replica.global_epoch() == 0
    }

    /// The maximum token age the guard enforces with these revocations.
    pub fn max_token_age(&self) -> Duration {
        Duration::from_millis(self.inner.rules.max_age_ms)
    }

    /// The leeway added to a revoked token's end.
    pub fn leeway(&self) -> Duration {
        Duration::from_millis(self.inner.rules.leeway_ms)
    }

    /// Checks `token` against the replica, or by the stale policy.
    pub(crate) fn check(&self, token: &VerifiedToken) -> Check {
        let facts = Facts {
            iss: token.issuer(),
            jti: token.token_id(),
            sub: token.subject(),
            iat_ms: (token.issued_at() * 1000.0) as u64,
        };
        if self.inner.replica.is_revoked(&facts, unix_ms()) {
            return Check::Revoked;
        }
        let Some(part) = &self.inner.redis else {
            return Check::Allowed;
        };
        if part.is_current() {
            return Check::Allowed;
        }
        if let Some(wait) = part.wait_current(&self.inner.replica, &facts) {
            return Check::AskStore(wait);
        }
        crate::metrics::stale(part.when_stale.label());
        match part.when_stale {
            WhenStale::FailOpen => Check::Allowed,
            WhenStale::FailClosed => Check::Unavailable,
            WhenStale::CheckStore => {
                let mut call = CHECK.call(4);
                call.key(part.keys.tokens.as_str())
                    .key(part.keys.users.as_str())
                    .key(part.keys.epoch.as_str())
                    .key(part.keys.generation.as_str())
                    .arg(facts.iat_ms)
                    .arg(
                        facts
                            .jti
                            .map(|jti| member(facts.iss, jti))
                            .unwrap_or_default()
                            .as_slice(),
                    )
                    .arg(facts.sub.unwrap_or(""))
                    .arg(if facts.sub.is_some() { "1" } else { "0" })
                    .arg(if part.sync.trust_empty { "1" } else { "0" });
                let redis = part.redis.clone();
                Check::AskStore(
                    StoreCall::boxed(async move {
                        let revoked: i64 = redis.eval(&call).await?;
                        Ok(revoked == 1)
                    })
                    .within(part.timeout),
                )
            }
        }
    }
}

impl RedisPart {
    /// A replica that just became stale under [`WhenStale::FailClosed`] (a lost
    /// subscription, a catch-up under way) is usually current again within milliseconds:
    /// while the subscription was confirmed at most twice the staleness bound ago, a check
    /// waits for that, up to the store deadline, rather than refusing at once. Once it is
    /// older (Redis down for a while), the policy applies without a wait.
    fn wait_current(&self, replica: &Arc<Replica>, facts: &Facts<'_>) -> Option<StoreCall<bool>> {
        if !matches!(self.when_stale, WhenStale::FailClosed) {
            return None;
        }
        let recent = self.fanout.staleness() * 2;
        if self.fanout.last_confirmed().is_none_or(|age| age > recent) {
            return None;
        }
        let (replica, fanout, sync) = (replica.clone(), self.fanout.clone(), self.sync.clone());
        let (iss, jti, sub) = (
            facts.iss.map(str::to_owned),
            facts.jti.map(str::to_owned),
            facts.sub.map(str::to_owned),
        );
        let iat_ms = facts.iat_ms;
        Some(
            StoreCall::boxed(async move {
                while !is_current(&sync, &fanout) {
                    // Woken by the catch-up's end; the subscription's own confirmation is
                    // looked at every few ms.
                    let woken = sync.loaded_now.notified();
                    let _ = tokio::time::timeout(Duration::from_millis(5), woken).await;
                }
                let facts = Facts {
                    iss: iss.as_deref(),
                    jti: jti.as_deref(),
                    sub: sub.as_deref(),
                    iat_ms,
                };
                Ok(replica.is_revoked(&facts, unix_ms()))
            })
            .within(self.timeout),
        )
    }

    fn is_current(&self) -> bool {
        is_current(&self.sync, &self.fanout)
    }

    async fn call<T: parapet_core::FromReply + Send + 'static>(
        &self,
        op: &'static str,
        call: &parapet_core::ScriptCall,
    ) -> Result<T, StoreError> {
        let redis = self.redis.clone();
        let call = call.clone();
        StoreCall::boxed(async move { redis.eval(&call).await })
            .within(self.timeout)
            .await
            .inspect_err(|e| crate::metrics::store_error(op, e))
    }
}

/// True when the last load or catch-up followed the last resync and the subscription is
/// confirmed within the staleness bound.
fn is_current(sync: &SyncState, fanout: &FanOut) -> bool {
    let resyncs = sync.resyncs.load(Ordering::Acquire);
    resyncs > 0 && sync.loaded.load(Ordering::Acquire) >= resyncs && fanout.is_current()
}

/// Entries read per command when loading.
const PAGE: usize = 5_000;

/// Brings the replica up to date after resync `generation`: catches up from the log when
/// it can (from the position: every change up to it is held), loads everything otherwise;
/// retries, backing off, until it succeeds, a newer resync takes over, or the revocations
/// are dropped.
async fn reload(
    replica: Arc<Replica>,
    sync: std::sync::Weak<SyncState>,
    redis: RedisHandle,
    keys: Arc<Keys>,
    generation: u64,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(state) = sync.upgrade() else { return };
        let reading = state.reading.lock().await;
        let from = state.position.get();
        let loaded = catch_up(&replica, &redis, &keys, &state, from).await;
        drop(reading);
        drop(state);
        match loaded {
            Ok(()) => {
                metric_len(&replica);
                if let Some(sync) = sync.upgrade() {
                    sync.loaded.fetch_max(generation, Ordering::AcqRel);
                    sync.loaded_now.notify_waiters();
                }
                return;
            }
            Err(e) => crate::metrics::store_error("load", &e),
        }
        // Stop when a newer resync took over, or the revocations were dropped.
        if sync
            .upgrade()
            .is_none_or(|s| s.resyncs.load(Ordering::Acquire) != generation)
        {
            return;
        }
        // Instances that lost Redis together do not come back in step.
        let jitter = Duration::from_millis(unix_ms() % 50);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// How often a current replica reads the log anyway.
const READ_THE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Every [`READ_THE_LOG_EVERY`], a current replica catches up from the log: a change whose
/// announcement was lost without the subscription dropping is applied within that time,
/// and the position stays close to the log's end, so a catch-up after a lost subscription
/// reads little. One script call, which usually finds nothing new.
async fn read_the_log_now_and_then(
    replica: Arc<Replica>,
    sync: std::sync::Weak<SyncState>,
    redis: RedisHandle,
    keys: Arc<Keys>,
) {
    loop {
        tokio::time::sleep(READ_THE_LOG_EVERY).await;
        let Some(state) = sync.upgrade() else { return };
        let synced = state.loaded.load(Ordering::Acquire) >= state.resyncs.load(Ordering::Acquire);
        if !synced {
            continue;
        }
        let reading = state.reading.lock().await;
        let from = state.position.get();
        if from.is_some()
            && let Err(e) = catch_up(&replica, &redis, &keys, &state, from).await
        {
            crate::metrics::store_error("load", &e);
        }
        drop(reading);
        metric_len(&replica);
    }
}

/// Catches up from the log after `from`, or loads everything when there is no `from`, the
/// generation changed (Redis lost its data) or the log no longer holds every change since.
async fn catch_up(
    replica: &Replica,
    redis: &RedisHandle,
    keys: &Keys,
    sync: &SyncState,
    from: Option<u64>,
) -> Result<(), StoreError> {
    let known = sync.generation.load(Ordering::Acquire);
    check_generation(redis, keys, sync).await?;
    let (Some(mut after), true) = (from, known == sync.generation.load(Ordering::Acquire)) else {
        return load(replica, redis, keys, sync).await;
    };
    loop {
        let mut call = CATCH_UP.call(1);
        call.key(keys.log.as_str()).arg(after).arg(PAGE);
        let reply: Vec<Vec<u8>> = redis.eval(&call).await?;
        let Some((gap, entries)) = reply.split_first() else {
            return Err(StoreError::UnexpectedReply("a catch-up"));
        };
        match gap.as_slice() {
            b"0" => {}
            b"1" => {
                crate::metrics::catch_up("load");
                return load(replica, redis, keys, sync).await;
            }
            _ => {
                // The log went backwards with the generation unchanged: Redis lost
                // changes it had acknowledged. What they revoked is unknown: everything
                // issued until now is.
                crate::metrics::data_loss();
                tracing::error!(
                    position = after,
                    "the revocation log went backwards (Redis restored from an older state, \
                     or failed over to a replica that lagged): every token issued before \
                     now is refused"
                );
                let mut call = REVOKE_ALL.call(2);
                call.key(keys.epoch.as_str())
                    .key(keys.log.as_str())
                    .arg(sync.retention_ms)
                    .arg(keys.channel.as_str());
                let epoch: u64 = redis.eval(&call).await?;
                replica.revoke_all(epoch);
                return load(replica, redis, keys, sync).await;
            }
        }
        let now = unix_ms();
        for pair in entries.chunks_exact(2) {
            replica.apply(&pair[1], now);
            after = log_number(&pair[0]).ok_or(StoreError::UnexpectedReply("a log id"))?;
        }
        sync.position.set(after);
        if entries.len() < 2 * PAGE {
            crate::metrics::catch_up("log");
            return Ok(());
        }
    }
}

/// Reads the global epoch, then the revoked tokens and users in pages of [`PAGE`], highest
/// score first, into the replica: one short command each, however large the set. The log's
/// newest id, read first, is where the next catch-up starts.
///
/// Ranks are counted from the top, so an entry expiring from the bottom meanwhile shifts
/// nothing still to be read; an insert or a longer revocation that moves an entry up may
/// make a page skip it, but every such change is announced, and the subscription was made
/// before the load began. The replica is a union, so what is read twice is harmless.
async fn load(
    replica: &Replica,
    redis: &RedisHandle,
    keys: &Keys,
    sync: &SyncState,
) -> Result<(), StoreError> {
    let mut newest = Command::new("XREVRANGE");
    newest
        .arg(keys.log.as_str())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1);
    let newest: Vec<(Vec<u8>, Vec<Vec<u8>>)> = redis.query(&newest).await?;
    let newest = newest
        .first()
        .and_then(|(id, _)| log_number(id))
        .unwrap_or(0);
    let mut get = Command::new("GET");
    get.arg(keys.epoch.as_str());
    let global: Option<String> = redis.query(&get).await?;
    if let Some(epoch) = global.as_deref().and_then(number) {
        replica.revoke_all(epoch);
    }
    for (key, is_user) in [(keys.tokens.as_str(), false), (keys.users.as_str(), true)] {
        // The next page is asked for while this one is applied.
        let fetch = |start: usize| {
            let mut range = Command::new("ZRANGE");
            range
                .arg(key)
                .arg(start)
                .arg(start + PAGE - 1)
                .arg("REV")
                .arg("WITHSCORES");
            let redis = redis.clone();
            tokio::spawn(async move { redis.query::<Vec<Vec<u8>>>(&range).await })
        };
        let mut start = 0;
        let mut pending = Some(fetch(start));
        while let Some(fetching) = pending.take() {
            let page = fetching
                .await
                .map_err(|_| StoreError::UnexpectedReply("a load page"))??;
            if page.len() >= 2 * PAGE {
                start += PAGE;
                pending = Some(fetch(start));
            }
            let mut entries = Vec::with_capacity(page.len() / 2);
            for pair in page.chunks_exact(2) {
                let score = std::str::from_utf8(&pair[1])
                    .ok()
                    .and_then(number)
                    .ok_or(StoreError::UnexpectedReply("a revocation score"))?;
                entries.push((pair[0].as_slice(), score));
            }
            let now = unix_ms();
            if is_user {
                let users = entries
                    .into_iter()
                    .map(|(user, epoch)| std::str::from_utf8(user).map(|u| (u, epoch)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| StoreError::UnexpectedReply("a revoked user"))?;
                replica.revoke_users(users, now);
            } else {
                replica.revoke_members(entries, now);
            }
        }
    }
    // Changes after `newest` were announced after the subscription was made: heard, or
    // caught up from the log after the next loss.
    sync.position.set(newest);
    Ok(())
}

/// Reads (or, on an empty Redis, writes) the generation marker; a changed or new marker
/// raises the global epoch to it, in Redis by the script and here by the load that follows.
async fn check_generation(
    redis: &RedisHandle,
    keys: &Keys,
    sync: &SyncState,
) -> Result<(), StoreError> {
    let known = sync.generation.load(Ordering::Acquire);
    let mut call = GENERATION.call(3);
    call.key(keys.generation.as_str())
        .key(keys.epoch.as_str())
        .key(keys.log.as_str())
        .arg(sync.retention_ms)
        .arg(keys.channel.as_str())
        .arg(if sync.trust_empty { "1" } else { "0" })
        .arg(if known == 0 {
            String::new()
        } else {
            known.to_string()
        });
    let (generation, created): (String, i64) = redis.eval(&call).await?;
    let generation =
        number(&generation).ok_or(StoreError::UnexpectedReply("a revocation generation"))?;
    if known != 0 && known != generation {
        crate::metrics::data_loss();
        tracing::error!(
            previous = known,
            generation,
            "Redis lost the revocations (restarted empty, flushed or evicted): every token \
             issued before the new generation is refused"
        );
    } else if created == 1 && !sync.trust_empty {
        crate::metrics::data_loss();
        tracing::warn!(
            generation,
            "no revocation generation in Redis (a first start, or Redis lost its data): \
             every token issued before now is refused"
        );
    }
    sync.generation.store(generation, Ordering::Release);
    Ok(())
}

/// Logs and counts a revocation made wider than asked.
fn widened(from: &'static str, to: &'static str, why: &'static str) {
    crate::metrics::widened(from, to);
    tracing::warn!(from, to, "revocation widened: {why}");
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A millisecond time as Redis writes it (an integer, or a float for a sorted-set score).
fn number(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

fn metric_len(replica: &Replica) {
    crate::metrics::replica_tokens(replica.len().0);
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field(
                "backend",
                &if self.inner.redis.is_some() {
                    "redis"
                } else {
                    "memory"
                },
            )
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
