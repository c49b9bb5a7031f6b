//! A bounded, sharded, self-cleaning table of `u64 → V` where each value knows its own
//! expiry time ([`Expiring`]): a GCRA `tat` *is* its expiry, a ban holds its end, a cached
//! refusal its `Retry-After` instant. An entry whose expiry is not after `now` is the same
//! as no entry, so an `i64` entry needs no second timestamp.
//!
//! Why not a general concurrent TTL cache (moka, quick_cache)? A decision must read and
//! write several entries of one subject under one lock, all or nothing, and the expiry *is*
//! the value; a general cache would store a second timestamp per entry and need a
//! compute-with-lock API per key. This table keeps each entry at 16 bytes plus one control
//! byte (hashbrown), about 20–40 bytes per key depending on the map's fill.
//!
//! Bounds: each shard holds at most `capacity / shards` entries. Expired entries are swept
//! when a shard fills and, amortised, every `max(len, 1024)` operations on a shard. What
//! happens when a shard is full of live entries is the table's [`WhenFull`] policy.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A value that carries its own expiry time (µs of the table user's clock).
pub trait Expiring {
    /// When the value stops mattering.
    fn expires(&self) -> i64;
}

impl Expiring for i64 {
    fn expires(&self) -> i64 {
        *self
    }
}

/// What a full table does with an entry that needs room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Evict the live entries closest to expiry (an eighth of the shard at once): for a
    /// rate limiter, the entries whose loss admits the least extra traffic.
    #[default]
    EvictNearestExpiry,
    /// Refuse the new entries; existing ones stay.
    Refuse,
}

/// The table had no room and its policy is [`WhenFull::Refuse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

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

type Map<V> = HashMap<u64, V, BuildHasherDefault<Identity>>;

/// The table (see the module docs).
///
/// ```
/// use parapet_core::table::{Table, WhenFull, entry_key};
///
/// let table: Table = Table::new(1_000, WhenFull::Refuse);
/// let h = table.hash(b"subject");
/// let mut shard = table.shard(h);
/// shard.make_room(1, 0).unwrap();
/// shard.insert(entry_key(h, 1), 500, 0);
/// assert_eq!(shard.get(entry_key(h, 1), 499), Some(&500));
/// assert_eq!(shard.get(entry_key(h, 1), 500), None, "expired");
/// ```
pub struct Table<V = i64> {
    shards: Box<[Mutex<Shard<V>>]>,
    shard_capacity: usize,
    hasher: RandomState,
    when_full: WhenFull,
    evicted: AtomicU64,
    refused: AtomicU64,
}

/// One locked shard of a [`Table`]: every entry of one subject lives in one shard.
pub struct Shard<V = i64> {
    map: Map<V>,
    /// Operations since the last sweep, and how many trigger the next one: the size the
    /// shard had after that sweep (at least 1024), so sweeping costs O(1) per operation.
    ops: usize,
    next_sweep: usize,
    capacity: usize,
    when_full: WhenFull,
    /// No entry expires before this (µs), as of the last sweep and later inserts: until
    /// then a sweep cannot free anything, so a full shard does not scan again (a flood of
    /// new subjects against a full refusing table costs O(1) each, not a scan).
    earliest: i64,
    evicted: u64,
    refused: u64,
}

impl<V: Expiring> Table<V> {
    /// A table of at most `capacity` entries (at least one per shard).
    pub fn new(capacity: usize, when_full: WhenFull) -> Self {
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
                        when_full,
                        earliest: i64::MAX,
                        evicted: 0,
                        refused: 0,
                    })
                })
                .collect(),
            shard_capacity,
            hasher: RandomState::new(),
            when_full,
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// A keyed hash (SipHash-1-3, random key per table) of a subject's bytes: an attacker
    /// cannot aim two subjects at one entry without knowing the key.
    pub fn hash(&self, bytes: &[u8]) -> u64 {
        self.hasher.hash_one(bytes)
    }

    /// Locks the shard of subject hash `h`; every entry of one subject lives there. The
    /// guard reports the shard's evictions and refusals to the table when dropped.
    pub fn shard(&self, h: u64) -> ShardGuard<'_, V> {
        let index = (h >> 32) as usize & (self.shards.len() - 1);
        let mut shard = lock(&self.shards[index]);
        shard.ops += 1;
        ShardGuard { table: self, shard }
    }

    /// Entries stored now, expired ones included until they are swept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// True when no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.shard_capacity * self.shards.len()
    }

    /// What the table does when full.
    pub fn when_full(&self) -> WhenFull {
        self.when_full
    }

    /// Live entries evicted to make room, since the table was made.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Requests for room refused (policy [`WhenFull::Refuse`]), since the table was made.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Bytes allocated by the maps (entries, control bytes), excluding the lock words.
    pub fn allocated_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(s).map.capacity() * (size_of::<(u64, V)>() + 1))
            .sum()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        for shard in &*self.shards {
            lock(shard).map.clear();
        }
    }
}

impl<V: Expiring> std::fmt::Debug for Table<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("capacity", &self.capacity())
            .field("when_full", &self.when_full)
            .finish_non_exhaustive()
    }
}

fn lock<V>(shard: &Mutex<Shard<V>>) -> MutexGuard<'_, Shard<V>> {
    // A panic while holding the lock cannot leave a shard inconsistent: every write is a
    // single insert or remove. So a poisoned lock is used as is.
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The entry key of (subject hash, entry id): distinct ids give independent keys.
pub fn entry_key(h: u64, id: u64) -> u64 {
    // A bijective mix (the splitmix64 finaliser) so that h ^ id differences spread.
    let mut z = h ^ id;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A locked shard.
pub struct ShardGuard<'a, V = i64> {
    table: &'a Table<V>,
    shard: MutexGuard<'a, Shard<V>>,
}

impl<V> std::ops::Deref for ShardGuard<'_, V> {
    type Target = Shard<V>;
    fn deref(&self) -> &Shard<V> {
        &self.shard
    }
}

impl<V> std::ops::DerefMut for ShardGuard<'_, V> {
    fn deref_mut(&mut self) -> &mut Shard<V> {
        &mut self.shard
    }
}

impl<V> Drop for ShardGuard<'_, V> {
    fn drop(&mut self) {
        if self.shard.evicted > 0 {
            let n = std::mem::take(&mut self.shard.evicted);
            self.table.evicted.fetch_add(n, Ordering::Relaxed);
        }
        if self.shard.refused > 0 {
            let n = std::mem::take(&mut self.shard.refused);
            self.table.refused.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl<V: Expiring> Shard<V> {
    /// The live value of `key`: `None` when absent or expired at `now`.
    pub fn get(&self, key: u64, now: i64) -> Option<&V> {
        self.map.get(&key).filter(|v| v.expires() > now)
    }

    /// The live value of `key`, to change in place: `None` when absent or expired at `now`.
    /// A change that moves the expiry earlier is fine: the entry is then swept a little
    /// later than it could be, and [`get`](Self::get) hides it from its expiry on.
    pub fn get_mut(&mut self, key: u64, now: i64) -> Option<&mut V> {
        self.map.get_mut(&key).filter(|v| v.expires() > now)
    }

    /// Makes room for `new` more entries: sweeps expired ones, then evicts or refuses per the
    /// table's policy. After `Ok(evicted)`, `new` inserts of keys without a slot fit, so the
    /// writes of one decision are all made or, on `Err`, none.
    pub fn make_room(&mut self, new: usize, now: i64) -> Result<usize, Full> {
        if self.ops >= self.next_sweep {
            self.sweep(now);
        }
        if self.map.len() + new <= self.capacity {
            return Ok(0);
        }
        if now >= self.earliest {
            self.sweep(now);
            if self.map.len() + new <= self.capacity {
                return Ok(0);
            }
        }
        if self.when_full == WhenFull::Refuse || new > self.capacity {
            self.refused += 1;
            return Err(Full);
        }
        let keep = (self.capacity - new).min(self.capacity - (self.capacity / 8).max(1));
        Ok(self.evict_nearest_expiry(keep))
    }

    /// Stores `value` (which must expire after `now`, or it is pointless). A key without a slot
    /// in a full shard gets room by the table's policy first; under [`WhenFull::Refuse`]
    /// it may be refused: call [`make_room`](Self::make_room) first to know.
    pub fn insert(&mut self, key: u64, value: V, now: i64) -> Result<usize, Full> {
        let evicted = if self.map.contains_key(&key) {
            0
        } else {
            self.make_room(1, now)?
        };
        self.earliest = self.earliest.min(value.expires());
        self.map.insert(key, value);
        Ok(evicted)
    }

    /// Makes room for writing all of `keys` (all or nothing): [`make_room`](Self::make_room)
    /// for those without a slot, with no per-key look-up while the shard has room for all.
    /// Then write them with [`put`](Self::put).
    pub fn reserve(&mut self, keys: &[u64], now: i64) -> Result<usize, Full> {
        if self.map.len() + keys.len() <= self.capacity && self.ops < self.next_sweep {
            return Ok(0);
        }
        // A key whose entry has expired may lose it to the sweep that making room runs: count
        // it as new, so the writes never exceed the room made.
        let new = keys
            .iter()
            .filter(|k| self.map.get(k).is_none_or(|v| v.expires() <= now))
            .count();
        self.make_room(new, now)
    }

    /// Stores `value` under a key [`reserve`](Self::reserve) made room for.
    pub fn put(&mut self, key: u64, value: V) {
        self.earliest = self.earliest.min(value.expires());
        self.map.insert(key, value);
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: u64) {
        self.map.remove(&key);
    }

    /// Removes `key` and returns its value, expired or not.
    pub fn take(&mut self, key: u64) -> Option<V> {
        self.map.remove(&key)
    }

    fn sweep(&mut self, now: i64) {
        // The next expiry is the earliest among the entries kept.
        let mut earliest = i64::MAX;
        self.map.retain(|_, v| {
            let expires = v.expires();
            let live = expires > now;
            if live {
                earliest = earliest.min(expires);
            }
            live
        });
        self.earliest = earliest;
        self.ops = 0;
        self.next_sweep = self.map.len().max(MIN_SWEEP_INTERVAL);
        if self.map.capacity() > 4 * self.map.len().max(64) {
            self.map.shrink_to_fit();
        }
    }

    /// Keeps the `keep` entries furthest from expiry; returns how many went.
    fn evict_nearest_expiry(&mut self, keep: usize) -> usize {
        let cut = self.map.len().saturating_sub(keep);
        if cut == 0 {
            return 0;
        }
        let mut expiries: Vec<i64> = self.map.values().map(Expiring::expires).collect();
        let (_, &mut threshold, _) = expiries.select_nth_unstable(cut - 1);
        let mut to_evict = cut;
        self.map.retain(|_, v| {
            if to_evict > 0 && v.expires() <= threshold {
                to_evict -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += cut as u64;
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_values_read_as_absent() {
        let table = Table::new(16, WhenFull::default());
        let mut shard = table.shard(1);
        shard.insert(7, 100, 0).unwrap();
        assert_eq!(shard.get(7, 99), Some(&100));
        assert_eq!(shard.get(7, 100), None);
    }

    #[test]
    fn eviction_keeps_the_entries_furthest_from_expiry_and_counts() {
        let table = Table::new(8, WhenFull::EvictNearestExpiry);
        {
            let mut shard = table.shard(0);
            let capacity = shard.capacity;
            for i in 0..capacity as i64 {
                shard.insert(i as u64, 1_000 + i, 0).unwrap();
            }
            shard.insert(999, 5_000, 0).unwrap();
            assert_eq!(shard.get(999, 0), Some(&5_000));
            assert_eq!(
                shard.get(0, 0),
                None,
                "the entry closest to expiry went first"
            );
            assert!(shard.map.len() <= capacity);
        }
        assert!(table.evicted() >= 1);
        assert_eq!(table.refused(), 0);
    }

    #[test]
    fn a_refusing_table_keeps_what_it_has() {
        let table = Table::new(64, WhenFull::Refuse);
        let mut shard = table.shard(0);
        let capacity = shard.capacity;
        for i in 0..capacity as u64 {
            shard.insert(i, 1_000, 0).unwrap();
        }
        assert_eq!(shard.insert(99, 1_000, 0), Err(Full));
        assert_eq!(
            shard.insert(0, 2_000, 0),
            Ok(0),
            "an existing key needs no room"
        );
        for i in 0..capacity as u64 {
            assert!(shard.get(i, 0).is_some());
        }
        // Once entries expire, room comes back by itself.
        assert_eq!(shard.insert(99, 3_000, 2_500), Ok(0));
        drop(shard);
        assert_eq!(table.refused(), 1);
        assert_eq!(table.evicted(), 0);
    }

    #[test]
    fn a_full_refusing_shard_does_not_rescan_before_anything_expires() {
        let table = Table::new(64, WhenFull::Refuse);
        let mut shard = table.shard(0);
        let capacity = shard.capacity;
        for i in 0..capacity as u64 {
            shard.insert(i, 1_000 + i as i64, 0).unwrap();
        }
        let ops = shard.ops;
        for key in 100..10_000u64 {
            assert_eq!(shard.insert(key, 5_000, 10), Err(Full));
        }
        // No sweep ran (a sweep resets the operation count).
        assert_eq!(shard.ops, ops);
        // Once the earliest entry expires, room is found again.
        assert_eq!(shard.insert(99_999, 5_000, 1_000), Ok(0));
    }

    #[test]
    fn reserved_writes_never_exceed_capacity_even_over_expired_slots() {
        let table = Table::new(64, WhenFull::EvictNearestExpiry);
        let mut shard = table.shard(0);
        let capacity = shard.capacity;
        // Full: half expire at 10, half live long.
        for i in 0..capacity as u64 {
            let value = if i % 2 == 0 { 10 } else { 1_000 };
            shard.insert(i, value, 0).unwrap();
        }
        // Rewrite expired keys and add new ones, after they expired.
        let keys: Vec<u64> = (0..capacity as u64)
            .step_by(2)
            .take(3)
            .chain([500, 501])
            .collect();
        shard.reserve(&keys, 20).unwrap();
        for key in &keys {
            shard.put(*key, 2_000);
        }
        assert!(
            shard.map.len() <= capacity,
            "{} > {capacity}",
            shard.map.len()
        );
    }

    #[test]
    fn make_room_is_all_or_nothing() {
        let table = Table::new(64, WhenFull::Refuse);
        let mut shard = table.shard(0);
        let capacity = shard.capacity;
        for i in 1..capacity as u64 {
            shard.insert(i, 1_000, 0).unwrap();
        }
        assert_eq!(
            shard.make_room(2, 0),
            Err(Full),
            "one slot left, two needed"
        );
        assert_eq!(shard.make_room(1, 0), Ok(0));
        let evicting = Table::new(64, WhenFull::EvictNearestExpiry);
        let mut shard = evicting.shard(0);
        let capacity = shard.capacity;
        for i in 0..capacity as u64 {
            shard.insert(i, 1_000 + i as i64, 0).unwrap();
        }
        shard.make_room(capacity.min(3), 0).unwrap();
        assert!(shard.map.len() + capacity.min(3) <= capacity);
    }

    #[test]
    fn idle_entries_are_swept_without_help() {
        let table = Table::new(1 << 20, WhenFull::default());
        let mut shard = table.shard(0);
        for i in 0..5_000u64 {
            shard.insert(i, 10, 0).unwrap();
        }
        // Time passes; later writes sweep what expired.
        for i in 0..6_000u64 {
            shard.ops += 1;
            shard.insert(10_000 + i, 1_000, 20).unwrap();
        }
        assert!(
            shard.map.values().all(|&v| v > 20),
            "expired entries were swept"
        );
    }
}
