//! The approximate mode for very hot keys: each instance spends cells it leased from the
//! shared store, and settles in the background.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use parapet_core::{FanOut, StoreCall, StoreError};

use super::RateLimitStore;
use crate::{Algorithm, Decision, Outcome, PolicySet, Subject};

/// Default number of keys leased at once.
const DEFAULT_MAX_KEYS: usize = 1024;

/// Renewals without demand after which a key is forgotten.
const IDLE_SETTLEMENTS: u32 = 10;

/// Cells asked for in a half-interval that make a key hot enough to lease for: below it,
/// its requests go to the inner store, so keys that are not hot (or a client spreading
/// requests thinly over many keys) never cost more store calls than requests.
const HOT_DEMAND: u64 = 8;

/// A store for very hot keys — a global limit, a large tenant — that answers from cells it
/// leased in advance, so a decision makes **no round trip**; a background task settles
/// with the shared store every `settle_every`.
///
/// How it works, per (subject, policy set):
///
/// - Twice per `settle_every` (Δ), the instance leases twice as many cells as it was asked
///   for in the last half-interval (at most the smallest burst) through the
///   inner store's ordinary `check`: a lease is charged to every policy all or nothing,
///   exactly as that many requests would be. When fewer are free, it leases what is free.
/// - Requests spend the current lease until the next one arrives; a lease lapses Δ after
///   it was asked for, even if the task is late. What a replaced lease did not spend is
///   given back at the next renewal when every policy of the set is GCRA (a window's
///   refund would return cells of another instant or window, so window policies keep
///   them: fewer admissions, never more).
/// - When a lease is spent and the store had leased all that was asked, demand outgrew
///   it: further requests are decided by the inner store (a round trip each) until the
///   next lease, so a spike never causes a false refusal. When the store had leased less
///   (the quota is nearly spent), they are refused until the lease lapses (`Retry-After`:
///   then, or the store's own answer if it refused the lease).
/// - A key is leased for only while it is hot: 8 cells or more asked for in a
///   half-interval. Until then, and for keys that cool down, requests are decided by the
///   inner store directly (one round trip each), so spreading requests over many keys
///   never makes more store calls than requests.
///
/// **The bound.** Every admitted request spends a cell the inner store admitted at most
/// `settle_every` (Δ) earlier, so over any interval `t` the instances together admit at
/// most what the exact limit admits over `t + Δ`. For GCRA of rate `r` and burst `B`:
/// **admitted ≤ B + r·(t + Δ)**, an over-admission of at most **r·Δ** however many
/// instances share the key (`tests/hot_keys.rs` checks it with 4 instances). In exchange,
/// cells one instance leased and did not use are lost to the others until the next
/// settlement: at most one lease per instance and interval is refused too early.
///
/// Bans and allow entries reach the instance at its next settlement. The `RateLimit`
/// fields are those of the last lease, with `r` the cells this instance still holds. At
/// most `max_keys` (default 1,024) keys are leased at once; others are decided by the
/// inner store directly.
///
/// Needs a Tokio runtime (the settling task is spawned on it). Dropping the store stops
/// the task.
///
/// ```no_run
/// use std::time::Duration;
/// use parapet_core::RedisHandle;
/// use parapet_ratelimit::key::Global;
/// use parapet_ratelimit::{HotKeyStore, Quota, RateLimitLayer, RedisStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisStore::new(RedisHandle::builder("redis://127.0.0.1:6379").build().await?)?;
/// let layer = RateLimitLayer::builder()
///     .policy("fleet", Quota::per_second(10_000))
///     .key(Global)
///     .store(HotKeyStore::new(redis, Duration::from_millis(100))?)
///     .build()?;
/// # Ok(()) }
/// ```
pub struct HotKeyStore {
    shared: Arc<Shared>,
    _settler: AbortOnDrop,
}

struct Shared {
    inner: Arc<dyn RateLimitStore>,
    settle_every: Duration,
    max_keys: AtomicUsize,
    /// By a keyed hash of (subject, policy set); each lease holds both, compared on use, so
    /// a collision sends a request to the inner store, never to another key's lease.
    leases: Mutex<HashMap<u64, Lease>>,
    hasher: RandomState,
}

/// What one instance holds for one key.
struct Lease {
    subject: Subject,
    set: PolicySet,
    /// Cells leased and not yet spent.
    left: u64,
    /// Cells of a replaced lease not spent, to give back at the next settlement.
    to_return: u64,
    /// When the lease lapses.
    until: Instant,
    /// The answer of the last lease: its states (for the fields) and, when the store
    /// refused, why and for how long.
    last: Decision,
    /// Cells asked for since the last settlement, admitted or not.
    demand: u64,
    idle: u32,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HotKeyStore {
    /// Leases from `inner` (a [`RedisStore`](crate::RedisStore), usually) and settles every
    /// `settle_every` (between 1 ms and 10 s). Must be called within a Tokio runtime.
    pub fn new(inner: impl RateLimitStore, settle_every: Duration) -> Result<Self, StoreError> {
        if settle_every < Duration::from_millis(1) || settle_every > Duration::from_secs(10) {
            return Err(StoreError::InvalidArgument(
                "settle_every must be between 1 ms and 10 s",
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::InvalidArgument("HotKeyStore::new must be called within a Tokio runtime")
        })?;
        let shared = Arc::new(Shared {
            inner: Arc::new(inner),
            settle_every,
            max_keys: AtomicUsize::new(DEFAULT_MAX_KEYS),
            leases: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        });
        let settler = runtime.spawn(settle_loop(Arc::downgrade(&shared), settle_every));
        Ok(Self {
            shared,
            _settler: AbortOnDrop(settler),
        })
    }

    /// The most keys leased at once (default 1,024); others are decided by the inner store.
    #[must_use]
    pub fn max_keys(self, max_keys: usize) -> Self {
        self.shared.max_keys.store(max_keys, Ordering::Relaxed);
        self
    }

    /// The keys leased now.
    pub fn leased_keys(&self) -> usize {
        self.shared.lock().len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides from the lease, or `None` when the inner store must decide.
    fn decide_from_lease(&self, subject: &Subject, set: &PolicySet, cost: u32) -> Option<Decision> {
        let now = Instant::now();
        let mut leases = self.lock();
        let key = self.hasher.hash_one((subject, set.id()));
        let Some(lease) = leases.get_mut(&key) else {
            if leases.len() < self.max_keys.load(Ordering::Relaxed) {
                // Known from now on: the next settlement leases cells for it.
                leases.insert(
                    key,
                    Lease {
                        subject: subject.clone(),
                        set: set.clone(),
                        left: 0,
                        to_return: 0,
                        until: now,
                        last: Decision::allow_listed(),
                        demand: u64::from(cost),
                        idle: 0,
                    },
                );
            }
            return None;
        };
        if lease.subject != *subject || lease.set.id() != set.id() {
            return None;
        }
        lease.demand += u64::from(cost);
        if now >= lease.until {
            return None;
        }
        match lease.last.outcome {
            Outcome::Banned | Outcome::AllowListed => return Some(lease.last.clone()),
            Outcome::Allowed | Outcome::Limited => {}
        }
        if lease.left >= u64::from(cost) {
            lease.left -= u64::from(cost);
            let mut states = lease.last.states.clone();
            for state in &mut states {
                state.remaining = lease.left;
                state.retry_after = None;
            }
            return Some(Decision {
                outcome: Outcome::Allowed,
                retry_after: None,
                states,
            });
        }
        // Spent. If the store had more to lease, demand outgrew the lease: the inner store
        // decides (a round trip, never a false refusal). If not, the quota is spent:
        // refused until the next settlement, or longer if the store said so.
        if lease.last.outcome == Outcome::Allowed {
            return None;
        }
        let until_settled = lease.until - now;
        let retry_after = lease
            .last
            .retry_after
            .filter(|_| lease.last.outcome == Outcome::Limited)
            .map_or(until_settled, |r| r.max(until_settled));
        let mut states = lease.last.states.clone();
        for state in &mut states {
            state.remaining = 0;
        }
        Some(Decision {
            outcome: Outcome::Limited,
            retry_after: Some(retry_after),
            states,
        })
    }

    /// Gives back what replaced leases did not spend and leases anew, all keys at once.
    /// The current lease is spent until the new one arrives, so renewing costs no request
    /// a round trip.
    async fn settle(self: Arc<Self>) {
        let mut work = Vec::new();
        {
            let now = Instant::now();
            let mut leases = self.lock();
            for lease in leases.values_mut() {
                // A lapsed lease's cells can no longer be spent: give them back.
                if now >= lease.until && returns_cells(&lease.set) {
                    lease.to_return += std::mem::take(&mut lease.left);
                }
                lease.idle = if lease.demand == 0 { lease.idle + 1 } else { 0 };
            }
            leases.retain(|_, lease| {
                lease.idle < IDLE_SETTLEMENTS || now < lease.until || lease.to_return > 0
            });
            for (key, lease) in leases.iter_mut() {
                let (burst, _) = lease.set.min_burst();
                // Enough for twice the last half-interval's demand: the new lease must last
                // until the one after it arrives. A key that is not hot gets none.
                let want = if lease.demand >= HOT_DEMAND {
                    lease.demand.saturating_mul(2).min(u64::from(burst))
                } else {
                    0
                };
                lease.demand = 0;
                let to_return = std::mem::take(&mut lease.to_return);
                if want == 0 && to_return == 0 {
                    continue;
                }
                work.push((
                    *key,
                    lease.subject.clone(),
                    lease.set.clone(),
                    to_return,
                    want,
                ));
            }
        }
        let calls = work
            .into_iter()
            .map(|(key, subject, set, to_return, want)| {
                let shared = self.clone();
                async move {
                    let asked = Instant::now();
                    let (returned, result) = shared.lease(&subject, &set, to_return, want).await;
                    let mut leases = shared.lock();
                    if let Some(lease) = leases.get_mut(&key) {
                        if !returned {
                            lease.to_return += to_return;
                        }
                        if let Ok(Some((decision, cells))) = result {
                            // What the replaced lease did not spend goes back next time.
                            if returns_cells(&lease.set) {
                                lease.to_return += std::mem::take(&mut lease.left);
                            }
                            lease.left = cells;
                            lease.until = asked + shared.settle_every;
                            lease.last = decision;
                        }
                        // On an error the current lease runs out; then requests go to the inner
                        // store, which reports the fault.
                    }
                }
            });
        let tasks: Vec<_> = calls.map(tokio::spawn).collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Gives back `to_return` cells (whether it did comes first), then leases up to
    /// `want` (none for 0): the decision and the cells leased.
    async fn lease(
        &self,
        subject: &Subject,
        set: &PolicySet,
        to_return: u64,
        want: u64,
    ) -> (bool, Result<Option<(Decision, u64)>, StoreError>) {
        if to_return > 0 {
            let cells = u32::try_from(to_return).unwrap_or(u32::MAX);
            if let Err(e) = self.inner.refund(subject, set, cells).await {
                return (false, Err(e));
            }
        }
        if want == 0 {
            return (true, Ok(None));
        }
        (true, self.claim(subject, set, want).await.map(Some))
    }

    /// Leases up to `want` cells: the decision and the cells leased.
    async fn claim(
        &self,
        subject: &Subject,
        set: &PolicySet,
        want: u64,
    ) -> Result<(Decision, u64), StoreError> {
        let want_cells = u32::try_from(want).unwrap_or(u32::MAX);
        let decision = self.inner.check(subject, set, want_cells).await?;
        if decision.outcome != Outcome::Limited {
            let cells = if decision.outcome == Outcome::Allowed {
                want
            } else {
                0
            };
            return Ok((decision, cells));
        }
        // Fewer are free than wanted: lease what every enforced policy has left.
        let free = set
            .policies()
            .iter()
            .zip(&decision.states)
            .filter(|(policy, _)| !policy.is_shadow())
            .map(|(_, state)| state.remaining)
            .min()
            .unwrap_or(0)
            .min(want);
        if free == 0 {
            return Ok((decision, 0));
        }
        let retry = self
            .inner
            .check(subject, set, u32::try_from(free).unwrap_or(u32::MAX))
            .await?;
        let cells = if retry.outcome == Outcome::Allowed {
            free
        } else {
            0
        };
        Ok((retry, cells))
    }
}

/// Unused cells go back only to GCRA policies: a window's refund would give back cells
/// of a later instant (the newest stamps) or of a later window than they were leased in.
fn returns_cells(set: &PolicySet) -> bool {
    set.policies()
        .iter()
        .all(|p| p.quota().algorithm() == Algorithm::Gcra)
}

/// Renews every lease twice per `settle_every`, so each lease, which lasts
/// `settle_every`, is replaced before it lapses.
async fn settle_loop(shared: Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every / 2);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.settle().await;
    }
}

impl RateLimitStore for HotKeyStore {
    fn check(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<Decision> {
        match self.shared.decide_from_lease(subject, policies, cost) {
            Some(decision) => StoreCall::ready(Ok(decision)),
            None => self.shared.inner.check(subject, policies, cost),
        }
    }

    fn refund(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<()> {
        self.shared.inner.refund(subject, policies, cost)
    }

    fn reset(&self, subject: &Subject, policies: &PolicySet) -> StoreCall<()> {
        self.shared.inner.reset(subject, policies)
    }

    fn ban(&self, subject: &Subject, duration: Duration) -> StoreCall<()> {
        self.shared.inner.ban(subject, duration)
    }

    fn unban(&self, subject: &Subject) -> StoreCall<()> {
        self.shared.inner.unban(subject)
    }

    fn allow(&self, subject: &Subject, duration: Duration) -> StoreCall<()> {
        self.shared.inner.allow(subject, duration)
    }

    fn unallow(&self, subject: &Subject) -> StoreCall<()> {
        self.shared.inner.unallow(subject)
    }

    fn is_remote(&self) -> bool {
        self.shared.inner.is_remote()
    }

    fn changes(&self, on_change: Arc<dyn Fn() + Send + Sync>) -> Option<FanOut> {
        self.shared.inner.changes(on_change)
    }
}

impl fmt::Debug for HotKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotKeyStore")
            .field("inner", &self.shared.inner)
            .field("settle_every", &self.shared.settle_every)
            .field("max_keys", &self.shared.max_keys.load(Ordering::Relaxed))
            .finish()
    }
}
