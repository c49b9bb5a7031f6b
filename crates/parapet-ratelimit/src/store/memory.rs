//! The in-process store.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parapet_core::table::{Table, WhenFull, entry_key};
use parapet_core::{Clock, FailureLog, StoreCall, StoreError, SystemClock};

use super::{RateLimitStore, check_cost, check_duration};
use crate::gcra::{self, Limit};
use crate::limits::sliding_log::SlidingLog;
use crate::{Algorithm, Decision, Outcome, PolicySet, Subject, metrics};

/// Entry ids of a subject's ban and allow entries in the marks table.
const BAN: u64 = 0x6261_6e00_0000_0001;
const ALLOW: u64 = 0x616c_6c6f_7700_0002;

/// How long a fallback keeps an allow entry it learned from the remote store.
const FOLLOWED_ALLOW: Duration = Duration::from_secs(60);

/// Default capacity of the ban and allow table.
const DEFAULT_MARK_CAPACITY: usize = 10_000;

/// Rate-limit state in this process: concurrent, bounded, and self-cleaning.
///
/// - **Counters**: at most `capacity` entries (one per subject and policy), each about
///   20–40 bytes: 100,000 keys take 2–4 MiB. Idle entries are swept by the store's own
///   operations, so there is no task to spawn. Subjects are kept as 64-bit keyed hashes.
/// - **Sliding-window logs** ([`Quota::sliding_window`](crate::Quota::sliding_window)) live
///   in a table of their own, of the same capacity and [`WhenFull`] policy: one log per
///   subject and policy, holding at most the policy's rate `N` time stamps (8 bytes each),
///   so at most `capacity × 8·N` bytes, and never more than 8 bytes per request admitted in
///   the last window. An evicted log forgets at most `N` requests.
/// - **Bans and allow entries** live in a table of their own (default 10,000 entries) that
///   traffic never evicts: a flood of new clients cannot lift a ban. Adding one past its
///   capacity is an error ([`StoreError::CapacityExceeded`]) returned to the caller.
/// - **When the counters are full** of live entries, [`WhenFull`] decides:
///   - [`EvictNearestExpiry`](WhenFull::EvictNearestExpiry) (default): the entries closest
///     to expiry go first, an eighth of a shard at a time. An evicted subject starts afresh,
///     so it may be admitted early: each evicted entry forgets at most
///     `ceil((tat − now) / T)` ≤ `B` requests of its policy (`T` the emission interval, `B`
///     the burst). Over any period, **extra admissions ≤ Σ over evicted entries of
///     `ceil((tat − now) / T)` ≤ evictions × B**; counted by
///     [`MEMORY_EVICTIONS`](crate::metrics::MEMORY_EVICTIONS).
///   - [`Refuse`](WhenFull::Refuse): a subject without state is refused (`429`,
///     `Retry-After: 1`) until room comes back, never admitted uncounted; counted by
///     [`MEMORY_REFUSALS`](crate::metrics::MEMORY_REFUSALS).
///
///   Either way a warning is logged at most once a minute.
/// - The writes of one decision (one entry per policy) are made all or nothing: room for
///   all of them is made first.
///
/// ```
/// use parapet_ratelimit::{MemoryStore, WhenFull};
/// let store = MemoryStore::new(100_000).when_full(WhenFull::Refuse);
/// assert_eq!(store.capacity(), 100_000);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    counters: Arc<Table>,
    logs: Arc<Table<SlidingLog>>,
    marks: Arc<Table>,
    clock: Arc<dyn Clock>,
    /// Set once any ban or allow entry was written: until then decisions skip looking.
    marked: Arc<AtomicBool>,
    full_log: Arc<FailureLog>,
}

impl MemoryStore {
    /// A store of at most `capacity` counters (rounded up to a multiple of its shard count).
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, SystemClock)
    }

    /// A store that takes its time from `clock` (tests use a `ManualClock`).
    pub fn with_clock(capacity: usize, clock: impl Clock) -> Self {
        Self {
            counters: Arc::new(Table::new(capacity, WhenFull::default())),
            logs: Arc::new(Table::new(capacity, WhenFull::default())),
            marks: Arc::new(Table::new(DEFAULT_MARK_CAPACITY, WhenFull::Refuse)),
            clock: Arc::new(clock),
            marked: Arc::new(AtomicBool::new(false)),
            full_log: Arc::new(FailureLog::new(
                "rate-limit memory store is full",
                Duration::from_secs(60),
            )),
        }
    }

    /// What to do when the counters are full of live entries (default
    /// [`WhenFull::EvictNearestExpiry`]). Call before the store is used: it starts empty.
    #[must_use]
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.counters = Arc::new(Table::new(self.counters.capacity(), when_full));
        self.logs = Arc::new(Table::new(self.logs.capacity(), when_full));
        self
    }

    /// The most ban and allow entries held (default 10,000). Call before the store is used.
    #[must_use]
    pub fn mark_capacity(mut self, capacity: usize) -> Self {
        self.marks = Arc::new(Table::new(capacity, WhenFull::Refuse));
        self
    }

    /// Counters and sliding-window logs held now, idle ones included until swept.
    pub fn len(&self) -> usize {
        self.counters.len() + self.logs.len()
    }

    /// True when no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most counters this store holds.
    pub fn capacity(&self) -> usize {
        self.counters.capacity()
    }

    /// Live counters and logs evicted to make room since the store was made.
    pub fn evicted(&self) -> u64 {
        self.counters.evicted() + self.logs.evicted()
    }

    /// Decisions refused for want of room ([`WhenFull::Refuse`]) since the store was made.
    pub fn refused(&self) -> u64 {
        self.counters.refused() + self.logs.refused()
    }

    /// Bytes held by the entry tables (a sliding-window log's stamps are counted by
    /// [`len`](Self::len) times at most `8·N`, see the type's docs, not here).
    pub fn allocated_bytes(&self) -> usize {
        self.counters.allocated_bytes() + self.logs.allocated_bytes() + self.marks.allocated_bytes()
    }

    /// Forgets everything, bans and allow entries included.
    pub fn clear(&self) {
        self.counters.clear();
        self.logs.clear();
        self.marks.clear();
    }

    fn now(&self) -> i64 {
        i64::try_from(self.clock.now_micros()).unwrap_or(i64::MAX)
    }

    /// The decision, synchronously.
    pub(crate) fn decide(
        &self,
        subject: &Subject,
        policies: &PolicySet,
        cost: u32,
    ) -> Result<Decision, StoreError> {
        check_cost(policies, cost)?;
        let now = self.now();
        if self.marked.load(Ordering::Relaxed) {
            let h = self.marks.hash(subject.as_bytes());
            let marks = self.marks.shard(h);
            if marks.get(entry_key(h, ALLOW), now).is_some() {
                return Ok(Decision::allow_listed());
            }
            if let Some(&until) = marks.get(entry_key(h, BAN), now) {
                return Ok(Decision::banned(micros(until - now)));
            }
        }
        let set = policies.policies();
        let n = set.len();
        let h = self.counters.hash(subject.as_bytes());
        let mut shard = self.counters.shard(h);
        // Sliding windows keep logs in a table of their own, locked after the counters'.
        let sliding = set
            .iter()
            .any(|p| p.limit().algorithm == Algorithm::SlidingWindow);
        let hl = if sliding {
            self.logs.hash(subject.as_bytes())
        } else {
            0
        };
        let mut log_shard = sliding.then(|| self.logs.shard(hl));
        let mut stored = [None; gcra::MAX_POLICIES];
        let mut limits = [Limit {
            algorithm: Algorithm::Gcra,
            interval: 1,
            burst: 1,
            shadow: false,
            window: 0,
        }; gcra::MAX_POLICIES];
        let mut keys = [0; gcra::MAX_POLICIES];
        let mut logs: [Option<&SlidingLog>; gcra::MAX_POLICIES] = [None; gcra::MAX_POLICIES];
        for (i, policy) in set.iter().enumerate() {
            limits[i] = policy.limit();
            if let (Algorithm::SlidingWindow, Some(log_shard)) =
                (limits[i].algorithm, log_shard.as_deref())
            {
                keys[i] = entry_key(hl, policy.id());
                logs[i] = log_shard.get(keys[i], now);
            } else {
                keys[i] = entry_key(h, policy.id());
                stored[i] = shard.get(keys[i], now).copied();
            }
        }
        let evaluation =
            gcra::evaluate_with(now, &stored[..n], &logs[..n], &limits[..n], i64::from(cost));
        if evaluation.must_write(i64::from(cost)) {
            let is_log = |i: &usize| limits[*i].algorithm == Algorithm::SlidingWindow;
            let mut counter_keys = [0; gcra::MAX_POLICIES];
            let mut log_keys = [0; gcra::MAX_POLICIES];
            let (mut nc, mut nl) = (0, 0);
            for (i, &key) in keys[..n].iter().enumerate() {
                if is_log(&i) {
                    (log_keys[nl], nl) = (key, nl + 1);
                } else {
                    (counter_keys[nc], nc) = (key, nc + 1);
                }
            }
            // Room for every write of the decision first, in both tables: all or nothing.
            let room = shard
                .reserve(&counter_keys[..nc], now)
                .and_then(|evicted| match log_shard.as_deref_mut() {
                    Some(log_shard) => Ok(evicted + log_shard.reserve(&log_keys[..nl], now)?),
                    None => Ok(evicted),
                });
            let Ok(evicted) = room else {
                drop(log_shard);
                drop(shard);
                self.full(now, 1, "refuse");
                return Err(StoreError::CapacityExceeded(
                    "no room for a new subject's counters (WhenFull::Refuse)",
                ));
            };
            for i in 0..n {
                match log_shard.as_deref_mut() {
                    Some(log_shard) if is_log(&i) => {
                        if !evaluation.charged[i] {
                            continue;
                        }
                        match log_shard.get_mut(keys[i], now) {
                            Some(log) => log.charge(now, i64::from(cost)),
                            None => {
                                let mut log = SlidingLog::new(limits[i].window);
                                log.charge(now, i64::from(cost));
                                log_shard.put(keys[i], log);
                            }
                        }
                    }
                    _ => shard.put(keys[i], evaluation.new_tats[i]),
                }
            }
            // Reported once the decision is written, outside the locks.
            drop(log_shard);
            drop(shard);
            if evicted > 0 {
                self.full(now, evicted, "evict");
            }
        } else {
            drop(log_shard);
            drop(shard);
        }
        Ok(Decision {
            outcome: if evaluation.allowed {
                Outcome::Allowed
            } else {
                Outcome::Limited
            },
            retry_after: (!evaluation.allowed).then(|| micros(evaluation.retry_after)),
            states: evaluation.states,
        })
    }

    /// Counts and reports a full table: `evicted` entries went, or one decision was refused.
    fn full(&self, now: i64, count: usize, action: &'static str) {
        metrics::memory_full(action, count);
        self.full_log.failure(
            now,
            "capacity",
            action,
            &"raise the capacity (memory_capacity) or expect early admissions (evict) or refusals (refuse)",
        );
    }

    fn set_until(&self, subject: &Subject, id: u64, duration: Duration) -> Result<(), StoreError> {
        let micros = check_duration(duration)?;
        let now = self.now();
        let h = self.marks.hash(subject.as_bytes());
        self.marks
            .shard(h)
            .insert(entry_key(h, id), now.saturating_add(micros), now)
            .map_err(|_| {
                StoreError::CapacityExceeded("ban and allow entries are at their capacity")
            })?;
        self.marked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps this store's ban and allow entries of `subject` in line with what a remote
    /// store just decided, so that, used as a fallback while the remote store is away, it
    /// still refuses banned subjects and admits allow-listed ones. A ban is kept until its
    /// end; an allow entry, whose end the remote store does not report, for a minute.
    pub(crate) fn follow(&self, subject: &Subject, decision: &Decision) {
        let result = match decision.outcome {
            Outcome::Banned => match decision.retry_after {
                Some(left) if !left.is_zero() => self.set_until(subject, BAN, left),
                _ => Ok(()),
            },
            Outcome::AllowListed => self.set_until(subject, ALLOW, FOLLOWED_ALLOW),
            _ if self.marked.load(Ordering::Relaxed) => {
                let h = self.marks.hash(subject.as_bytes());
                let mut marks = self.marks.shard(h);
                marks.remove(entry_key(h, BAN));
                marks.remove(entry_key(h, ALLOW));
                Ok(())
            }
            _ => Ok(()),
        };
        // A full mark table keeps what it has: the remote store stays the truth.
        let _ = result;
    }

    fn remove_mark(&self, subject: &Subject, id: u64) {
        let h = self.marks.hash(subject.as_bytes());
        self.marks.shard(h).remove(entry_key(h, id));
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

impl RateLimitStore for MemoryStore {
    fn check(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<Decision> {
        StoreCall::ready(self.decide(subject, policies, cost))
    }

    fn refund(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<()> {
        if let Err(e) = check_cost(policies, cost) {
            return StoreCall::ready(Err(e));
        }
        let now = self.now();
        let h = self.counters.hash(subject.as_bytes());
        let mut shard = self.counters.shard(h);
        for policy in policies.policies() {
            if policy.limit().algorithm == Algorithm::SlidingWindow {
                let hl = self.logs.hash(subject.as_bytes());
                if let Some(log) = self.logs.shard(hl).get_mut(entry_key(hl, policy.id()), now) {
                    log.refund(i64::from(cost));
                }
                continue;
            }
            let key = entry_key(h, policy.id());
            let Some(&tat) = shard.get(key, now) else {
                continue;
            };
            let back = tat - i64::from(cost) * policy.limit().step();
            if back > now {
                // The key has a slot: no room is needed.
                let _ = shard.insert(key, back, now);
            } else {
                shard.remove(key);
            }
        }
        StoreCall::ready(Ok(()))
    }

    fn reset(&self, subject: &Subject, policies: &PolicySet) -> StoreCall<()> {
        let h = self.counters.hash(subject.as_bytes());
        let mut shard = self.counters.shard(h);
        let hl = self.logs.hash(subject.as_bytes());
        let mut logs = self.logs.shard(hl);
        for policy in policies.policies() {
            shard.remove(entry_key(h, policy.id()));
            logs.remove(entry_key(hl, policy.id()));
        }
        StoreCall::ready(Ok(()))
    }

    fn ban(&self, subject: &Subject, duration: Duration) -> StoreCall<()> {
        StoreCall::ready(self.set_until(subject, BAN, duration))
    }

    fn unban(&self, subject: &Subject) -> StoreCall<()> {
        self.remove_mark(subject, BAN);
        StoreCall::ready(Ok(()))
    }

    fn allow(&self, subject: &Subject, duration: Duration) -> StoreCall<()> {
        StoreCall::ready(self.set_until(subject, ALLOW, duration))
    }

    fn unallow(&self, subject: &Subject) -> StoreCall<()> {
        self.remove_mark(subject, ALLOW);
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
            .field("when_full", &self.counters.when_full())
            .field("mark_capacity", &self.marks.capacity())
            .field("clock", &self.clock)
            .finish()
    }
}
