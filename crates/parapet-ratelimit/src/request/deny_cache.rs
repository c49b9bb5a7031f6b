//! Local memory of Redis's refusals, so a refused client costs no round trip until it may
//! be admitted again.
//!
//! Exact, never lenient: under GCRA a key's `tat` only grows (a refusal writes nothing and an
//! admission pushes it later), so a request Redis refused until `T` is refused by Redis until
//! `T` whoever asks. The cache records `T` from the moment the reply *arrived*, which is after
//! Redis computed it, so it may deny up to half a round trip longer than Redis would, and never
//! admits what Redis would refuse.
//!
//! Only explicit resets, unbans and allow-list changes can shorten a refusal. The store
//! announces each through the fan-out, and every instance's cache is emptied when the
//! announcement arrives (within milliseconds); while an instance cannot confirm it hears the
//! announcements, it does not answer from its cache at all. A replayed refusal is the
//! store's refusal with its times moved on: same policies, same fields, a ban stays a ban.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parapet_core::table::{Expiring, Table, WhenFull, entry_key};

use crate::{Decision, PolicySet, Subject};

/// Bans are cached for at most this long, a bound on staleness should an announcement be
/// lost between two confirmations of the subscription.
const MAX_BAN_CACHE: Duration = Duration::from_secs(1);

pub(crate) struct DenyCache {
    table: Table<CachedRefusal>,
    /// Counts clears. A refusal whose call was sent before a clear may predate the change
    /// that caused it, so it is not cached (see `insert`).
    epoch: AtomicU64,
}

#[derive(Clone)]
struct CachedRefusal {
    /// When the store's refusal ends (µs, this instance's clock).
    until: i64,
    /// When it arrived.
    at: i64,
    decision: Arc<Decision>,
}

impl Expiring for CachedRefusal {
    fn expires(&self) -> i64 {
        self.until
    }
}

impl DenyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            table: Table::new(capacity, WhenFull::EvictNearestExpiry),
            epoch: AtomicU64::new(0),
        }
    }

    /// The number of clears so far: read it when a store call is sent.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn key(&self, subject: &Subject, set: &PolicySet, cost: u32) -> (u64, u64) {
        let h = self.table.hash(subject.as_bytes());
        (
            h,
            entry_key(
                h,
                set.id() ^ u64::from(cost).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
        )
    }

    /// The cached refusal of this (subject, set, cost), its times moved on to `now`.
    pub(crate) fn lookup(
        &self,
        subject: &Subject,
        set: &PolicySet,
        cost: u32,
        now: i64,
    ) -> Option<Decision> {
        let (h, key) = self.key(subject, set, cost);
        let cached = self.table.shard(h).get(key, now)?.clone();
        let elapsed = Duration::from_micros(u64::try_from(now - cached.at).unwrap_or(0));
        let mut decision = (*cached.decision).clone();
        // A ban's Retry-After is the ban's end, which may lie past the cache entry's.
        decision.retry_after = decision.retry_after.map(|r| r.saturating_sub(elapsed));
        for state in &mut decision.states {
            state.reset_after = state.reset_after.saturating_sub(elapsed);
            state.retry_after = state.retry_after.map(|r| r.saturating_sub(elapsed));
        }
        Some(decision)
    }

    /// Remembers a store's refusal from `now` for its `retry_after` (bans: at most a
    /// second), unless the cache was cleared since the call was sent (`sent_at_epoch`): the
    /// store may have decided before a reset whose announcement has already been applied.
    pub(crate) fn insert(
        &self,
        subject: &Subject,
        set: &PolicySet,
        cost: u32,
        now: i64,
        decision: &Decision,
        sent_at_epoch: u64,
    ) {
        let Some(mut retry_after) = decision.retry_after else {
            return;
        };

        if decision.outcome == crate::Outcome::Banned {
            retry_after = retry_after.min(MAX_BAN_CACHE);
        }
        let until = now.saturating_add(i64::try_from(retry_after.as_micros()).unwrap_or(i64::MAX));
        let (h, key) = self.key(subject, set, cost);
        let refusal = CachedRefusal {
            until,
            at: now,
            decision: Arc::new(decision.clone()),
        };
        let mut shard = self.table.shard(h);
        // Checked under the shard lock: `clear` counts up before it empties each shard, so
        // either this sees the new epoch, or the clear empties this shard after the insert.
        if self.epoch() != sent_at_epoch {
            return;
        }
        // A full cache evicts its entries nearest to expiry: never an error.
        let _ = shard.insert(key, refusal, now);
    }

    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.table.clear();
    }
}
