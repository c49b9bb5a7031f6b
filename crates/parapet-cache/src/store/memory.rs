//! The in-process store: bounded by bytes, sharded, expired entries swept by itself.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use http::HeaderMap;
use parapet_core::StoreCall;

use super::{CacheStore, Lookup};
use crate::{CacheKey, StoredResponse};

/// The shard size above which the store splits into more shards (at most 16).
const SHARD_BYTES: usize = 4 << 20;

/// A store in this process's memory, bounded by bytes.
///
/// Every entry is weighed (key, header block, body: [`StoredResponse::weight`]) and the
/// bound holds at insert time: an insert that would pass it first drops expired entries,
/// then the entries closest to expiry, and an entry larger than a shard (an eighth to a
/// sixteenth of the capacity on large stores, all of it on stores under 4 MiB × 2) is not
/// stored at all.
///
/// ```
/// use parapet_cache::MemoryStore;
///
/// let store = MemoryStore::new(64 << 20); // 64 MiB
/// assert_eq!(store.capacity(), 64 << 20);
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
    capacity: usize,
    evicted: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    resources: HashMap<u64, Vec<Arc<StoredResponse>>>,
    bytes: usize,
}

impl MemoryStore {
    /// A store that holds at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let shards = (capacity / SHARD_BYTES).clamp(1, 16);
        Self {
            shards: (0..shards).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            capacity,
            evicted: AtomicU64::new(0),
        }
    }

    /// The bound, in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bytes held now.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| read(s).bytes).sum()
    }

    /// How many live entries were dropped to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn index(&self, key: &CacheKey) -> (u64, usize) {
        let h = self.hasher.hash_one(key.as_bytes());
        // The low bits pick the shard; the map hashes the whole value again.
        (h, (h as usize) % self.shards.len())
    }

    /// Hits only read: concurrent hits on one resource do not queue behind each other.
    fn shard(&self, key: &CacheKey) -> (u64, RwLockReadGuard<'_, Shard>) {
        let (h, i) = self.index(key);
        (h, read(&self.shards[i]))
    }

    fn shard_mut(&self, key: &CacheKey) -> (u64, RwLockWriteGuard<'_, Shard>) {
        let (h, i) = self.index(key);
        (h, write(&self.shards[i]))
    }

    /// Removes every variant stored under the canonical key `bytes` (an announcement from
    /// another instance carries only the bytes).
    pub(crate) fn remove_bytes(&self, bytes: &[u8]) {
        let h = self.hasher.hash_one(bytes);
        let mut shard = write(&self.shards[(h as usize) % self.shards.len()]);
        if shard
            .resources
            .get(&h)
            .and_then(|vs| vs.first())
            .is_some_and(|v| v.key.as_bytes() == bytes)
        {
            shard.remove_resource(h);
        }
    }

    fn shard_capacity(&self) -> usize {
        self.capacity / self.shards.len()
    }
}

// A panic while holding a lock leaves byte counts at worst slightly off; the cache must
// keep serving rather than poison every later request.
fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    shard
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(shard: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    shard
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shard {
    fn remove_resource(&mut self, h: u64) {
        if let Some(variants) = self.resources.remove(&h) {
            self.bytes -= variants.iter().map(|v| v.weight()).sum::<usize>();
        }
    }

    /// Drops expired variants, then whole resources nearest to expiry, until `need` more
    /// bytes fit under `capacity`; returns how many live resources went.
    fn make_room(&mut self, need: usize, capacity: usize, now: SystemTime) -> u64 {
        if self.bytes + need <= capacity {
            return 0;
        }
        let mut freed = 0;
        self.resources.retain(|_, variants| {
            variants.retain(|v| {
                let live = v.expires() > now;
                if !live {
                    freed += v.weight();
                }
                live
            });
            !variants.is_empty()
        });
        self.bytes -= freed;
        if self.bytes + need <= capacity {
            return 0;
        }
        // Evict down to 7/8 of the capacity at once so that a full shard does not sort on
        // every insert.
        let target = (capacity - need).min(capacity / 8 * 7);
        let mut order: Vec<(SystemTime, u64)> = self
            .resources
            .iter()
            .map(|(h, vs)| (vs.iter().map(|v| v.expires()).max().unwrap_or(now), *h))
            .collect();
        order.sort_unstable();
        let mut evicted = 0;
        for (_, h) in order {
            if self.bytes <= target {
                break;
            }
            self.remove_resource(h);
            evicted += 1;
        }
        evicted
    }
}

impl CacheStore for MemoryStore {
    fn lookup(&self, key: &CacheKey, request: &HeaderMap, now: SystemTime) -> StoreCall<Lookup> {
        let (h, shard) = self.shard(key);
        let found = match shard.resources.get(&h) {
            Some(variants) if variants.first().is_some_and(|v| v.key == *key) => {
                let live = || variants.iter().filter(|v| v.expires() > now);
                match live().find(|v| v.matches(request)) {
                    Some(hit) => Lookup::Hit(Arc::clone(hit)),
                    None => match live().next() {
                        Some(any) => Lookup::VaryMiss(any.vary.clone()),
                        None => Lookup::Miss,
                    },
                }
            }
            _ => Lookup::Miss,
        };
        StoreCall::ready(Ok(found))
    }

    fn put(
        &self,
        response: Arc<StoredResponse>,
        max_variants: usize,
        now: SystemTime,
    ) -> StoreCall<()> {
        let weight = response.weight();
        let capacity = self.shard_capacity();
        if weight > capacity {
            return StoreCall::ready(Ok(()));
        }
        let (h, mut shard) = self.shard_mut(&response.key);
        let same_resource = shard
            .resources
            .get(&h)
            .and_then(|vs| vs.first())
            .is_some_and(|v| v.key == response.key);
        if !same_resource {
            // Nothing stored, or a hash collision: the newcomer takes the slot.
            shard.remove_resource(h);
        }
        if let Some(variants) = shard.resources.get_mut(&h) {
            let mut freed = 0;
            variants.retain(|v| {
                let keep = !v.same_variant(&response) && v.expires() > now;
                if !keep {
                    freed += v.weight();
                }
                keep
            });
            while variants.len() >= max_variants.max(1) {
                freed += variants.remove(0).weight();
            }
            shard.bytes -= freed;
        }
        let evicted = shard.make_room(weight, capacity, now);
        self.evicted.fetch_add(evicted, Ordering::Relaxed);
        shard.bytes += weight;
        shard.resources.entry(h).or_default().push(response);
        StoreCall::ready(Ok(()))
    }

    fn remove(&self, key: &CacheKey) -> StoreCall<()> {
        let (h, mut shard) = self.shard_mut(key);
        if shard
            .resources
            .get(&h)
            .and_then(|vs| vs.first())
            .is_some_and(|v| v.key == *key)
        {
            shard.remove_resource(h);
        }
        StoreCall::ready(Ok(()))
    }

    fn clear(&self) -> StoreCall<()> {
        for shard in &*self.shards {
            let mut shard = write(shard);
            shard.resources.clear();
            shard.bytes = 0;
        }
        StoreCall::ready(Ok(()))
    }

    fn is_in_process(&self) -> bool {
        true
    }
}
