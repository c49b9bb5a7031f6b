//! The in-process store.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parapet_core::{Clock, SystemClock};

use super::table::{Table, entry_key};
use super::{RateLimitStore, StoreCall};
use crate::gcra::{self, Limit};
use crate::{Decision, Outcome, PolicySet, Subject};

/// Entry ids of a subject's ban and allow entries (policy ids are SHA-256 derived, so they
/// do not meet these by accident).
const BAN: u64 = 0x6261_6e00_0000_0001;
const ALLOW: u64 = 0x616c_6c6f_7700_0002;

/// Rate-limit state in this process: concurrent, bounded, and self-cleaning.
///
/// Holds at most `capacity` entries (one per subject and policy, plus bans and allow
/// entries), each about 20–40 bytes: 100,000 keys take 2–4 MiB. Idle entries are swept by
/// the store's own operations, so there is no task to spawn; when full, the entries closest
/// to expiry are evicted first. Subjects are kept as 64-bit keyed hashes only.
///
/// ```
/// use parapet_ratelimit::MemoryStore;
/// let store = MemoryStore::new(100_000);
/// assert_eq!(store.capacity(), 100_000);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    table: Arc<Table>,
    clock: Arc<dyn Clock>,
    /// Set once any ban or allow entry was written: until then decisions skip looking.
    marked: Arc<AtomicBool>,
}

impl MemoryStore {
    /// A store of at most `capacity` entries (rounded up to a multiple of its shard count).
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, SystemClock)
    }

    /// A store that takes its time from `clock` (tests use a `ManualClock`).
    pub fn with_clock(capacity: usize, clock: impl Clock) -> Self {
        Self {
            table: Arc::new(Table::new(capacity)),
            clock: Arc::new(clock),
            marked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Entries held now, idle ones included until swept.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries this store holds.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Bytes held by the entry tables.
    pub fn allocated_bytes(&self) -> usize {
        self.table.allocated_bytes()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.table.clear();
    }

    fn now(&self) -> i64 {
        i64::try_from(self.clock.now_micros()).unwrap_or(i64::MAX)
    }

    /// The decision, synchronously.
    pub(crate) fn decide(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> Decision {
        let now = self.now();
        let h = self.table.hash(subject.as_bytes());
        let mut shard = self.table.shard(h);
        if self.marked.load(Ordering::Relaxed) {
            if shard.get(entry_key(h, ALLOW), now).is_some() {
                return Decision::allow_listed();
            }
            if let Some(until) = shard.get(entry_key(h, BAN), now) {
                return Decision::banned(micros(until - now));
            }
        }
        let set = policies.policies();
        let mut stored = [None; 16];
        let mut limits = [Limit {
            interval: 1,
            burst: 1,
        }; 16];
        for (i, policy) in set.iter().enumerate() {
            stored[i] = shard.get(entry_key(h, policy.id()), now);
            limits[i] = policy.limit();
        }
        let n = set.len();
        let evaluation = gcra::evaluate(now, &stored[..n], &limits[..n], i64::from(cost));
        if evaluation.must_write(i64::from(cost)) {
            for (policy, tat) in set.iter().zip(evaluation.new_tats) {
                shard.insert(entry_key(h, policy.id()), tat, now);
            }
        }
        drop(shard);
        Decision {
            outcome: if evaluation.allowed {
                Outcome::Allowed
            } else {
                Outcome::Limited
            },
            retry_after: (!evaluation.allowed).then(|| micros(evaluation.retry_after)),
            states: evaluation.states,
        }
    }

    fn set_until(&self, subject: &Subject, id: u64, duration: Duration) {
        self.marked.store(true, Ordering::Relaxed);
        let now = self.now();
        let until = now.saturating_add(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX));
        let h = self.table.hash(subject.as_bytes());
        self.table.shard(h).insert(entry_key(h, id), until, now);
    }

    fn remove(&self, subject: &Subject, ids: impl IntoIterator<Item = u64>) {
        let h = self.table.hash(subject.as_bytes());
        let mut shard = self.table.shard(h);
        for id in ids {
            shard.remove(entry_key(h, id));
        }
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

impl RateLimitStore for MemoryStore {
    fn check(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<Decision> {
        StoreCall::ready(Ok(self.decide(subject, policies, cost)))
    }

    fn reset(&self, subject: &Subject, policies: &PolicySet) -> StoreCall<()> {
        self.remove(subject, policies.policies().iter().map(|p| p.id()));
        StoreCall::ready(Ok(()))
    }

    fn ban(&self, subject: &Subject, duration: Duration) -> StoreCall<()> {
        self.set_until(subject, BAN, duration);
        StoreCall::ready(Ok(()))
    }

    fn unban(&self, subject: &Subject) -> StoreCall<()> {
        self.remove(subject, [BAN]);
        StoreCall::ready(Ok(()))
    }

    fn allow(&self, subject: &Subject, duration: Duration) -> StoreCall<()> {
        self.set_until(subject, ALLOW, duration);
        StoreCall::ready(Ok(()))
    }

    fn unallow(&self, subject: &Subject) -> StoreCall<()> {
        self.remove(subject, [ALLOW]);
        StoreCall::ready(Ok(()))
    }

    fn is_remote(&self) -> bool {
        false
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity())
            .field("clock", &self.clock)
            .finish()
    }
}
