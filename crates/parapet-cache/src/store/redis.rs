//! Responses in Redis (standalone or Cluster), shared by every instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};
use parapet_core::fanout::Event;
use parapet_core::{
    Command, FanOut, KeyPrefix, KeySecret, Keyspace, RedisHandle, Script, StoreCall, StoreError,
};

use super::codec::{decode, encode};
use super::{CacheStore, Lookup, PurgeFeed, PurgeNotice};
use crate::{CacheKey, StoredResponse};

const KIND: &str = "cache";
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Resources whose `Vary` fields this instance remembers, to look a variant up in one
/// round trip; the memo is emptied when full.
const MEMO_CAPACITY: usize = 10_000;

static HIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("hit.lua")));
static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("put.lua")));
static REMOVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("remove.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
/// Redis's clock, read on the node that holds the purge records (on a Cluster, the node
/// whose clock dates the purges).
static CLOCK: LazyLock<Script> = LazyLock::new(|| Script::new("return redis.call('TIME')"));
static PURGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("purge.lua")));
/// How long purge records are kept in Redis after the last one: longer than anything is
/// stored.
const PURGE_RECORDS_MS: u64 = 366 * 86_400_000;

/// Responses in Redis, shared by every instance of a service.
///
/// - One hash per resource, `{prefix}:cache:{tag}`, where the tag is a SHA-256 (or
///   HMAC-SHA-256 with [`key_secret`](Self::key_secret)) of the canonical key: field `v`
///   holds the `Vary` field names, one field per variant holds the response in a compact
///   binary form (head block + raw body) that carries the full canonical key, compared on
///   read.
/// - **A hit is one round trip** (`HMGET` of the `Vary` names and the variant this instance
///   expects): each instance remembers the `Vary` names of the resources it has seen; a
///   resource it has not seen costs a second `HGET` the first time when it has a `Vary`.
///   A hit on a resource that varies is an `EVALSHA` instead, which also counts the use
///   (field `u<tag>`).
/// - A store is one `EVALSHA` that replaces the variant, drops every variant when the
///   `Vary` names change and the least used ones past `max_variants`, and sets the key's TTL to
///   the longest time any variant may still be used (freshness plus stale windows). Every
///   key has a TTL. A removal (`DEL`) and a store that replaces a stored variant are
///   announced on `{prefix}:cache:changes` by the script that makes them, for the memory
///   tiers of [`TieredStore`](super::TieredStore)s: each other instance drops its copy of
///   the resource, older than what Redis now holds.
/// - A hit on a resource that varies counts its use (best effort: refused by a full Redis,
///   the count is skipped, not the hit); the counts are halved every four rounds of
///   `max_variants` stores.
/// - Ages are computed from the instances' clocks, like any HTTP cache's: instances with
///   skewed clocks disagree on an entry's age by their skew.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use parapet_cache::{CacheLayer, RedisStore};
/// use parapet_core::RedisHandle;
///
/// let redis = RedisHandle::builder("redis://127.0.0.1:6379").build().await?;
/// let layer = CacheLayer::builder().store(RedisStore::new(redis)?).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    redis: RedisHandle,
    keyspace: Keyspace,
    memo: Arc<Mutex<HashMap<String, Arc<[HeaderName]>>>>,
    purge_listener: Arc<OnceLock<FanOut>>,
    purge_feeds: Feeds,
    /// This store (and its clones) in store announcements, so that a tier ignores its own.
    instance: u64,
}

impl RedisStore {
    /// A store on `redis`, with key prefix `parapet` and a deadline per call of 50 ms (or
    /// the handle's own, if shorter).
    pub fn new(redis: RedisHandle) -> Result<Self, StoreError> {
        let timeout = DEFAULT_TIMEOUT.min(redis.timeout());
        Ok(Self {
            redis: redis.with_timeout(timeout)?,
            keyspace: Keyspace::default(),
            memo: Arc::default(),
            purge_listener: Arc::default(),
            purge_feeds: Feeds::default(),
            instance: crate::shared::random_u64(),
        })
    }

    /// The first part of every key (default `parapet`).
    #[must_use]
    pub fn prefix(mut self, prefix: KeyPrefix) -> Self {
        self.keyspace = self.keyspace.with_prefix(prefix);
        self
    }

    /// Keys hold an HMAC-SHA-256 of the URL under `secret` instead of a plain SHA-256.
    #[must_use]
    pub fn key_secret(mut self, secret: KeySecret) -> Self {
        self.keyspace = self.keyspace.with_secret(secret);
        self
    }

    /// The deadline of one call (default 50 ms): above zero and at most the handle's own.
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, StoreError> {
        self.redis = self.redis.with_timeout(timeout)?;
        Ok(self)
    }

    fn redis_key(&self, key: &CacheKey) -> String {
        self.keyspace
            .key(KIND, &self.keyspace.tag(key.as_bytes()), "")
    }

    /// `{prefix}:cache:{tag}:lease-<variant>`: in the resource's Cluster slot, one per
    /// variant.
    fn lease_key(&self, key: &CacheKey, variant: &[u8]) -> String {
        let digest = self.keyspace.tag(variant);
        let suffix = digest.as_bytes()[..8]
            .iter()
            .fold(String::from("lease-"), |mut s, b| {
                s.push_str(&format!("{b:02x}"));
                s
            });
        self.keyspace
            .key(KIND, &self.keyspace.tag(key.as_bytes()), &suffix)
    }

    /// The channel removals are announced on: `{prefix}:cache:changes`.
    pub(crate) fn channel(&self) -> String {
        self.keyspace.name(KIND, "changes")
    }

    /// What a store that replaces a variant announces: `S`, this store's instance in 16
    /// hex digits, the canonical key. (An instance that does not know the form reads it as
    /// a removal of a key it does not hold: nothing.)
    fn store_announcement(&self, key: &CacheKey) -> Vec<u8> {
        let mut message = format!("S{:016x}", self.instance).into_bytes();
        message.extend_from_slice(key.as_bytes());
        message
    }

    /// The canonical key a store announcement from another instance names; `None` for one
    /// of this store's own, or for another kind of message.
    pub(crate) fn stored_elsewhere<'m>(&self, message: &'m [u8]) -> Option<&'m [u8]> {
        let rest = message.strip_prefix(b"S")?;
        let (instance, key) = (rest.get(..16)?, rest.get(16..)?);
        let instance = u64::from_str_radix(std::str::from_utf8(instance).ok()?, 16).ok()?;
        (instance != self.instance).then_some(key)
    }

    /// Whether a message is a store announcement of this store's own.
    pub(crate) fn is_own_store(&self, message: &[u8]) -> bool {
        message.starts_with(b"S") && self.stored_elsewhere(message).is_none()
    }

    pub(crate) fn handle(&self) -> &RedisHandle {
        &self.redis
    }

    /// The hash of purge records: `{prefix}:cache:purges`.
    fn purges_key(&self) -> String {
        self.keyspace.name(KIND, "purges")
    }

    /// Reads every recorded purge into `feeds`, in a task.
    pub(crate) fn load_purges(&self, feeds: Feeds) {
        load_purges(self.redis.clone(), self.purges_key(), feeds);
    }

    fn remember(&self, redis_key: &str, names: Arc<[HeaderName]>) {
        let mut memo = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if memo.len() >= MEMO_CAPACITY {
            memo.clear();
        }
        memo.insert(redis_key.to_owned(), names);
    }
}

/// The purge feeds of every layer built on one store, and how far Redis's clock is ahead
/// of this process's: purges are recorded in Redis time (one clock for every instance) and
/// fed in this process's.
#[derive(Clone, Default)]
pub(crate) struct Feeds {
    feeds: Arc<Mutex<Vec<PurgeFeed>>>,
    /// Redis's clock minus this process's system clock, in µs (0 until measured).
    offset: Arc<AtomicI64>,
}

impl Feeds {
    pub(crate) fn add(&self, feed: PurgeFeed) {
        self.feeds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(feed);
    }

    /// Feeds a notice heard from Redis (its time is Redis's) to every layer.
    pub(crate) fn feed(&self, mut notice: PurgeNotice) {
        let offset = self.offset.load(Ordering::Relaxed);
        let shift = Duration::from_micros(offset.unsigned_abs());
        notice.at = if offset >= 0 {
            notice.at.checked_sub(shift)
        } else {
            notice.at.checked_add(shift)
        }
        .unwrap_or(notice.at);
        let feeds = self
            .feeds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for feed in feeds {
            feed(notice.clone());
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.feeds.lock().map(|f| f.is_empty()).unwrap_or(true)
    }
}

/// Redis's clock minus this process's, in µs: `TIME` on the node of `key` against the
/// midpoint of the call.
async fn clock_offset(redis: &RedisHandle, key: &str) -> Option<i64> {
    let micros = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_micros()).ok())
    };
    let before = micros(SystemTime::now())?;
    let mut clock = CLOCK.call(1);
    clock.key(key);
    let time: Vec<String> = redis.eval(&clock).await.ok()?;
    let after = micros(SystemTime::now())?;
    let (secs, us) = (
        time.first()?.parse::<i64>().ok()?,
        time.get(1)?.parse::<i64>().ok()?,
    );
    Some(secs * 1_000_000 + us - (before + after) / 2)
}

/// Measures the clock offset, then reads every purge recorded under `key` into `feeds`, in
/// a task, retrying a few times.
fn load_purges(redis: RedisHandle, key: String, feeds: Feeds) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut all = Command::new("HGETALL");
    all.arg(&key);
    runtime.spawn(async move {
        // A failed read is retried (0.1, 0.2, 0.4, 0.8, 1.6 s): purges missed while
        // disconnected must not stay missed until the next resubscription.
        let mut pause = std::time::Duration::from_millis(100);
        let flat = loop {
            if let Some(offset) = clock_offset(&redis, &key).await {
                feeds.offset.store(offset, Ordering::Relaxed);
            }
            match redis.query::<Vec<Vec<u8>>>(&all).await {
                Ok(flat) => break flat,
                Err(_) if pause <= std::time::Duration::from_millis(1600) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(_) => return,
            }
        };
        for pair in flat.chunks_exact(2) {
            if let Some(notice) = PurgeNotice::parse(&pair[0], &pair[1]) {
                feeds.feed(notice);
            }
        }
    });
}

/// The `v` field: the `Vary` names, comma-separated.
fn spec(names: &[HeaderName]) -> String {
    names
        .iter()
        .map(HeaderName::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_spec(spec: &[u8]) -> Option<Arc<[HeaderName]>> {
    if spec.is_empty() {
        return Some(Arc::from([]));
    }
    spec.split(|&b| b == b',')
        .map(|n| HeaderName::from_bytes(n).ok())
        .collect::<Option<Vec<_>>>()
        .map(Arc::from)
}

/// The field of the variant selected by these values: a hash of them, so request values
/// of any size make a 35-byte field (`d{…}`).
fn variant_field(keyspace: &Keyspace, values: &[Box<[u8]>]) -> String {
    let mut field = String::with_capacity(35);
    field.push('d');
    keyspace
        .tag(&crate::vary::encode(values))
        .push_braced(&mut field);
    field
}

/// The field counting a variant's hits: `u<tag>` for `d<tag>`.
fn use_field(field: &str) -> String {
    format!("u{}", field.get(1..).unwrap_or_default())
}

fn found(blob: Option<Vec<u8>>, key: &CacheKey, names: &[HeaderName], now: SystemTime) -> Lookup {
    match blob.and_then(|b| decode(b, key)) {
        Some(response) if response.expires() > now => Lookup::Hit(Arc::new(response)),
        _ => Lookup::VaryMiss(names.to_vec()),
    }
}

impl CacheStore for RedisStore {
    fn lookup(&self, key: &CacheKey, request: &HeaderMap, now: SystemTime) -> StoreCall<Lookup> {
        let redis_key = self.redis_key(key);
        let guess = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&redis_key)
            .cloned()
            .unwrap_or_else(|| Arc::from([]));
        let field = variant_field(&self.keyspace, &crate::vary::values(request, &guess));
        let store = self.clone();
        let key = key.clone();
        let request = request.clone();
        StoreCall::boxed(async move {
            let (spec_bytes, blob): (Option<Vec<u8>>, Option<Vec<u8>>) = if guess.is_empty() {
                let mut hmget = Command::new("HMGET");
                hmget.arg(&redis_key).arg("v").arg(&field);
                store.redis.query(&hmget).await?
            } else {
                // A resource that varies: the hit counts for its variant.
                let mut hit = HIT.call(1);
                hit.key(&redis_key).arg(&field).arg(use_field(&field));
                store.redis.eval(&hit).await?
            };
            let Some(spec_bytes) = spec_bytes else {
                return Ok(Lookup::Miss);
            };
            let Some(names) = parse_spec(&spec_bytes) else {
                return Ok(Lookup::Miss);
            };
            if names == guess {
                return Ok(found(blob, &key, &names, now));
            }
            store.remember(&redis_key, Arc::clone(&names));
            let field = variant_field(&store.keyspace, &crate::vary::values(&request, &names));
            let mut hget = Command::new("HGET");
            hget.arg(&redis_key).arg(&field);
            let blob: Option<Vec<u8>> = store.redis.query(&hget).await?;
            Ok(found(blob, &key, &names, now))
        })
    }

    fn put(
        &self,
        response: Arc<StoredResponse>,
        max_variants: usize,
        now: SystemTime,
    ) -> StoreCall<()> {
        let Some(blob) = encode(&response) else {
            return StoreCall::ready(Err(StoreError::InvalidArgument(
                "a response with more than 65,535 header values, Vary fields or tags",
            )));
        };
        let redis_key = self.redis_key(&response.key);
        let field = variant_field(&self.keyspace, &response.vary_values);
        let left = response.expires().duration_since(now).unwrap_or_default();
        let ttl_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
        self.remember(&redis_key, Arc::from(response.vary.clone()));
        let mut call = PUT.call(1);
        call.key(&redis_key)
            .arg(spec(&response.vary))
            .arg(&field)
            .arg(blob)
            .arg(ttl_ms)
            .arg(max_variants)
            .arg(self.channel())
            .arg(self.store_announcement(&response.key));
        let redis = self.redis.clone();
        StoreCall::boxed(async move {
            let _: i64 = redis.eval(&call).await?;
            Ok(())
        })
    }

    fn remove(&self, key: &CacheKey) -> StoreCall<()> {
        let mut call = REMOVE.call(1);
        call.key(self.redis_key(key))
            .arg(self.channel())
            .arg(key.as_bytes());
        let redis = self.redis.clone();
        StoreCall::boxed(async move {
            let _: i64 = redis.eval(&call).await?;
            Ok(())
        })
    }

    fn announce_purge(&self, notice: &PurgeNotice) -> StoreCall<()> {
        let mut call = PURGE.call(1);
        call.key(self.purges_key())
            .arg(notice.field())
            .arg(if notice.soft { "s" } else { "h" })
            .arg(PURGE_RECORDS_MS)
            .arg(self.channel())
            .arg(crate::purge::MAX_RECORDS);
        let redis = self.redis.clone();
        StoreCall::boxed(async move {
            let _: i64 = redis.eval(&call).await?;
            Ok(())
        })
    }

    fn lease(&self, key: &CacheKey, variant: &[u8], token: u64, ttl: Duration) -> StoreCall<bool> {
        let mut set = Command::new("SET");
        set.arg(self.lease_key(key, variant))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        let redis = self.redis.clone();
        StoreCall::boxed(async move {
            let taken: Option<String> = redis.query(&set).await?;
            Ok(taken.is_some())
        })
    }

    fn release(&self, key: &CacheKey, variant: &[u8], token: u64) -> StoreCall<()> {
        let mut call = RELEASE.call(1);
        call.key(self.lease_key(key, variant)).arg(token);
        let redis = self.redis.clone();
        StoreCall::boxed(async move {
            let _: i64 = redis.eval(&call).await?;
            Ok(())
        })
    }

    fn listen_for_purges(&self, feed: PurgeFeed) {
        // Every layer built on this store (or a clone of it) hears every purge.
        self.purge_feeds.add(feed);
        // The handler holds the handle and the feeds, not the store: the store holds the
        // listener.
        let (redis, key, feeds) = (
            self.redis.clone(),
            self.purges_key(),
            self.purge_feeds.clone(),
        );
        let listener = self.purge_listener.get_or_init(|| {
            FanOut::new(&self.redis, self.channel(), move |event| match event {
                Event::Message(message) => {
                    if let Some(notice) = PurgeNotice::from_message(message) {
                        feeds.feed(notice);
                    }
                }
                // Announcements may have been missed: read the records again.
                Event::Resync => load_purges(redis.clone(), key.clone(), feeds.clone()),
                _ => {}
            })
        });
        listener.start();
        // A resubscription may have passed before this feed was added.
        self.load_purges(self.purge_feeds.clone());
    }

    fn clear(&self) -> StoreCall<()> {
        StoreCall::ready(Err(StoreError::InvalidArgument(
            "a Redis cache cannot be cleared without scanning its keys; purge a prefix instead",
        )))
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.redis.target())
            .field("prefix", &self.keyspace.prefix().as_str())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notice heard from Redis is dated by Redis's clock: with Redis 5 s ahead of this
    /// process, it is fed 5 s earlier in this process's clock (and 5 s later when behind).
    #[test]
    fn notices_from_redis_are_converted_to_this_clock() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (offset, expected) in [
            (5_000_000, at - Duration::from_secs(5)),
            (-5_000_000, at + Duration::from_secs(5)),
            (0, at),
        ] {
            let feeds = Feeds::default();
            feeds.offset.store(offset, Ordering::Relaxed);
            let heard = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&heard);
            feeds.add(Arc::new(move |notice: PurgeNotice| {
                sink.lock().unwrap().push(notice.at);
            }));
            feeds.feed(PurgeNotice {
                prefix: true,
                name: "/a".into(),
                soft: false,
                at,
            });
            assert_eq!(*heard.lock().unwrap(), [expected], "offset {offset}");
        }
    }
}
