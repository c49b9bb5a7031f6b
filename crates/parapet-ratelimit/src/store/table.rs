//! A bounded, sharded, self-cleaning table of `u64 → i64` where each value is also its own
//! expiry time: a GCRA `tat`, a ban's end, a cached denial's end. An entry whose value is
//! not after `now` is the same as no entry, so expiry needs no second timestamp.
//!
//! Why not a general concurrent TTL cache (moka, quick_cache)? A decision must read and
//! write several entries of one subject under one lock, and the expiry *is* the value; a
//! general cache would store a second timestamp per entry and need a compute-with-lock API
//! per key. This table keeps each entry at 16 bytes plus one control byte (hashbrown), about
//! 20–40 bytes per key depending on the map's fill.
//!
//! Bounds: each shard holds at most `capacity / shards` entries. Expired entries are swept
//! when a shard fills and, amortised, every `max(len, 1024)` operations on a shard; if a full shard has
//! nothing expired, the eighth of it closest to expiry is evicted (the entries whose loss
//! admits the least extra traffic).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard};

/// The keys are already uniform (SipHash output), so the map does not hash them again.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Fewest operations between two sweeps of a shard.
const MIN_SWEEP_INTERVAL: usize = 1024;

type Map = HashMap<u64, i64, BuildHasherDefault<Identity>>;

pub(crate) struct Table {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    hasher: RandomState,
}

pub(crate) struct Shard {
    map: Map,
    /// Operations since the last sweep, and how many trigger the next one: the size the
    /// shard had after that sweep (at least 1024), so sweeping costs O(1) per operation.
    ops: usize,
    next_sweep: usize,
    capacity: usize,
}

impl Table {
    /// A table of at most `capacity` entries (at least one per shard).
    pub(crate) fn new(capacity: usize) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (parallelism * 4)
            .next_power_of_two()
            .clamp(1, 64)
            .min(capacity.max(1).next_power_of_two());
        let shard_capacity = capacity.div_ceil(shards).max(1);
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        map: Map::default(),
                        ops: 0,
                        next_sweep: MIN_SWEEP_INTERVAL,
                        capacity: shard_capacity,
                    })
                })
                .collect(),
            shard_capacity,
            hasher: RandomState::new(),
        }
    }

    /// A keyed hash (SipHash-1-3, random key per table) of a subject's bytes: an attacker
    /// cannot aim two subjects at one entry without knowing the key.
    pub(crate) fn hash(&self, bytes: &[u8]) -> u64 {
        self.hasher.hash_one(bytes)
    }

    /// Locks the shard of subject hash `h`; every entry of one subject lives there.
    pub(crate) fn shard(&self, h: u64) -> MutexGuard<'_, Shard> {
        let index = (h >> 32) as usize & (self.shards.len() - 1);
        // A panic while holding the lock cannot leave a shard inconsistent: every write is
        // a single insert or remove. So a poisoned lock is used as is.
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.ops += 1;
        shard
    }

    /// Entries stored now, expired ones included until they are swept.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// The most entries the table holds.
    pub(crate) fn capacity(&self) -> usize {
        self.shard_capacity * self.shards.len()
    }

    /// Bytes allocated by the maps (entries, control bytes), excluding the lock words.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(s).map.capacity() * (size_of::<(u64, i64)>() + 1))
            .sum()
    }

    /// Removes every entry.
    pub(crate) fn clear(&self) {
        for shard in &*self.shards {
            lock(shard).map.clear();
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The entry key of (subject hash, entry id): distinct ids give independent keys.
pub(crate) fn entry_key(h: u64, id: u64) -> u64 {
    // A bijective mix (the splitmix64 finaliser) so that h ^ id differences spread.
    let mut z = h ^ id;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Shard {
    /// The live value of `key`: `None` when absent or not after `now`.
    pub(crate) fn get(&self, key: u64, now: i64) -> Option<i64> {
        self.map.get(&key).copied().filter(|&v| v > now)
    }

    /// Stores `value` (which must be after `now`, or it is pointless).
    pub(crate) fn insert(&mut self, key: u64, value: i64, now: i64) {
        if self.ops >= self.next_sweep {
            self.sweep(now);
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.sweep(now);
            if self.map.len() >= self.capacity {
                self.evict_closest_to_expiry();
            }
        }
        self.map.insert(key, value);
    }

    pub(crate) fn remove(&mut self, key: u64) {
        self.map.remove(&key);
    }

    fn sweep(&mut self, now: i64) {
        self.map.retain(|_, v| *v > now);
        self.ops = 0;
        self.next_sweep = self.map.len().max(MIN_SWEEP_INTERVAL);
        if self.map.capacity() > 4 * self.map.len().max(64) {
            self.map.shrink_to_fit();
        }
    }

    fn evict_closest_to_expiry(&mut self) {
        let keep = self.capacity - (self.capacity / 8).max(1);
        let mut values: Vec<i64> = self.map.values().copied().collect();
        let cut = values.len() - keep;
        let (_, &mut threshold, _) = values.select_nth_unstable(cut - 1);
        let mut to_evict = cut;
        self.map.retain(|_, v| {
            if to_evict > 0 && *v <= threshold {
                to_evict -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_values_read_as_absent() {
        let table = Table::new(16);
        let mut shard = table.shard(1);
        shard.insert(7, 100, 0);
        assert_eq!(shard.get(7, 99), Some(100));
        assert_eq!(shard.get(7, 100), None);
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let table = Table::new(1000);
        for i in 0..100_000u64 {
            let h = table.hash(&i.to_le_bytes());
            let key = entry_key(h, 0);
            table.shard(h).insert(key, 1_000_000, 0);
        }
        assert!(
            table.len() <= table.capacity(),
            "{} > {}",
            table.len(),
            table.capacity()
        );
        assert!(table.capacity() < 1100);
    }

    #[test]
    fn eviction_keeps_the_entries_furthest_from_expiry() {
        let table = Table::new(8);
        let mut shard = table.shard(0);
        let capacity = shard.capacity;
        for i in 0..capacity as i64 {
            shard.insert(i as u64, 1_000 + i, 0);
        }
        shard.insert(999, 5_000, 0);
        assert_eq!(shard.get(999, 0), Some(5_000));
        assert_eq!(
            shard.get(0, 0),
            None,
            "the entry closest to expiry went first"
        );
        assert!(shard.map.len() <= capacity);
    }

    #[test]
    fn idle_entries_are_swept_without_help() {
        let table = Table::new(1 << 20);
        let mut shard = table.shard(0);
        for i in 0..5_000u64 {
            shard.insert(i, 10, 0);
        }
        // Time passes; later writes sweep what expired.
        for i in 0..6_000u64 {
            shard.ops += 1;
            shard.insert(10_000 + i, 1_000, 20);
        }
        assert!(
            shard.map.values().all(|&v| v > 20),
            "expired entries were swept"
        );
    }
}
