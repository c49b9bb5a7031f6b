//! Two tiers: this process's memory in front of a Redis shared by every instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use http::HeaderMap;
use parapet_core::fanout::Event;
use parapet_core::{FanOut, StoreCall};

use super::redis::Feeds;
use super::{CacheStore, Lookup, MemoryStore, PurgeFeed, PurgeNotice, RedisStore};
use crate::{CacheKey, StoredResponse};

/// Variants of one resource kept in memory when copied from Redis (the layer's own
/// `max_variants` applies to stores).
const MEMORY_VARIANTS: usize = 16;

/// A [`MemoryStore`] in front of a [`RedisStore`]: hits are served from memory without a
/// round trip; what memory lacks is read from Redis and kept in memory too.
///
/// Removals (by key, and the §4.4 invalidations of unsafe methods) are made in Redis by a
/// script that announces them on the fan-out of `parapet-core`; every instance drops its
/// memory copy within milliseconds. The memory tier is used **only while the fan-out is
/// current** (every subscribed node confirmed within 500 ms): while it is not — Redis
/// restarting, a partition — every lookup goes to Redis, and after a resubscription the
/// memory tier starts empty, so it never serves an entry whose removal it may have missed.
///
/// A store that replaces a variant is announced the same way: every other instance drops
/// its memory copy of the resource, older than what Redis now holds, and its next hit
/// reads the new one from Redis once (the storing instance keeps its own new copy).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use parapet_cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};
/// use parapet_core::RedisHandle;
///
/// let redis = RedisHandle::builder("redis://127.0.0.1:6379").build().await?;
/// let store = TieredStore::new(MemoryStore::new(64 << 20), RedisStore::new(redis)?);
/// let layer = CacheLayer::builder().store(store).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TieredStore {
    memory: Arc<MemoryStore>,
    redis: RedisStore,
    changes: FanOut,
    /// Bumped by every announcement heard: a Redis reply read before one may predate the
    /// removal it announces, and is then not copied into memory.
    heard: Arc<AtomicU64>,
    purges: Feeds,
}

impl TieredStore {
    /// `memory` in front of `redis`.
    pub fn new(memory: MemoryStore, redis: RedisStore) -> Self {
        let memory = Arc::new(memory);
        let heard = Arc::new(AtomicU64::new(0));
        let purges = Feeds::default();
        let (tier, count, feed, remote) = (
            Arc::clone(&memory),
            Arc::clone(&heard),
            purges.clone(),
            redis.clone(),
        );
        let changes = FanOut::new(redis.handle(), redis.channel(), move |event| {
            // This instance's own stores change nothing it holds in memory.
            if let Event::Message(message) = &event
                && remote.is_own_store(message)
            {
                return;
            }
            count.fetch_add(1, Ordering::AcqRel);
            match event {
                Event::Message(message) => match PurgeNotice::from_message(message) {
                    Some(notice) => {
                        feed.feed(notice);
                    }
                    None => tier.remove_bytes(remote.stored_elsewhere(message).unwrap_or(message)),
                },
                // Announcements may have been missed: nothing in memory can be trusted,
                // and purges are read again.
                Event::Resync => {
                    let _ = tier.clear().now_or_later();
                    if !feed.is_empty() {
                        remote.load_purges(feed.clone());
                    }
                }
                _ => {}
            }
        });
        changes.start();
        Self {
            memory,
            redis,
            changes,
            heard,
            purges,
        }
    }

    /// Whether the memory tier is in use now (the fan-out is current).
    pub fn is_in_sync(&self) -> bool {
        self.changes.is_current()
    }

    /// The memory tier.
    pub fn memory(&self) -> &MemoryStore {
        &self.memory
    }
}

impl TieredStore {
    /// Copies `response` into memory if no announcement was heard since `before`; one heard
    /// meanwhile may be the removal of this very entry, so the copy is taken back. (The
    /// handler counts an announcement before applying it, so whichever order the two run
    /// in, a removed entry does not stay in memory.)
    fn copy_to_memory(
        memory: &MemoryStore,
        heard: &AtomicU64,
        before: u64,
        response: Arc<StoredResponse>,
        max_variants: usize,
        now: SystemTime,
    ) {
        if heard.load(Ordering::Acquire) != before {
            return;
        }
        let key = response.key.clone();
        let _ = memory.put(response, max_variants, now).now_or_later();
        if heard.load(Ordering::Acquire) != before {
            let _ = memory.remove(&key).now_or_later();
        }
    }
}

impl CacheStore for TieredStore {
    fn answers_at_once(&self) -> bool {
        true
    }

    /// A memory-tier hit, while the fan-out is current (as `lookup` itself serves one).
    fn hit_at_once(
        &self,
        key: &CacheKey,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<StoredResponse>> {
        if !self.changes.is_current() {
            return None;
        }
        self.memory.hit_at_once(key, request, now)
    }

    fn lookup(&self, key: &CacheKey, request: &HeaderMap, now: SystemTime) -> StoreCall<Lookup> {
        let in_sync = self.changes.is_current();
        if in_sync
            && let Ok(Ok(Lookup::Hit(hit))) = self.memory.lookup(key, request, now).now_or_later()
        {
            return StoreCall::ready(Ok(Lookup::Hit(hit)));
        }
        let before = self.heard.load(Ordering::Acquire);
        let remote = self.redis.lookup(key, request, now);
        let memory = Arc::clone(&self.memory);
        let changes = self.changes.clone();
        let heard = Arc::clone(&self.heard);
        StoreCall::boxed(async move {
            let found = remote.await?;
            if let Lookup::Hit(hit) = &found
                && changes.is_current()
            {
                Self::copy_to_memory(
                    &memory,
                    &heard,
                    before,
                    Arc::clone(hit),
                    MEMORY_VARIANTS,
                    now,
                );
            }
            Ok(found)
        })
    }

    fn put(
        &self,
        response: Arc<StoredResponse>,
        max_variants: usize,
        now: SystemTime,
    ) -> StoreCall<()> {
        let before = self.heard.load(Ordering::Acquire);
        let remote = self.redis.put(Arc::clone(&response), max_variants, now);
        let memory = Arc::clone(&self.memory);
        let changes = self.changes.clone();
        let heard = Arc::clone(&self.heard);
        StoreCall::boxed(async move {
            let stored = remote.await;
            // A full Redis (out of memory: it refuses writes, and says so) does not take
            // this instance's memory hits away with it: the copy is kept here, and dropped
            // like any other on a removal announced by any instance.
            let keep = match &stored {
                Ok(()) => true,
                Err(error) => matches!(error, parapet_core::StoreError::OutOfMemory(_)),
            };
            if keep && changes.is_current() {
                Self::copy_to_memory(&memory, &heard, before, response, max_variants, now);
            }
            stored
        })
    }

    fn remove(&self, key: &CacheKey) -> StoreCall<()> {
        let _ = self.memory.remove(key).now_or_later();
        self.redis.remove(key)
    }

    fn clear(&self) -> StoreCall<()> {
        let _ = self.memory.clear().now_or_later();
        self.redis.clear()
    }

    fn announce_purge(&self, notice: &PurgeNotice) -> StoreCall<()> {
        self.redis.announce_purge(notice)
    }

    fn lease(
        &self,
        key: &CacheKey,
        variant: &[u8],
        token: u64,
        ttl: std::time::Duration,
    ) -> StoreCall<bool> {
        self.redis.lease(key, variant, token, ttl)
    }

    fn release(&self, key: &CacheKey, variant: &[u8], token: u64) -> StoreCall<()> {
        self.redis.release(key, variant, token)
    }

    fn listen_for_purges(&self, feed: PurgeFeed) {
        self.purges.add(feed);
        // The first resubscription may have passed already: read the records now (every
        // feed hears them again; a purge applied twice is applied once).
        self.redis.load_purges(self.purges.clone());
    }
}

impl std::fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("memory", &self.memory)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}
