//! Local memory of Redis's refusals, so a refused client costs no round trip until it may
//! be admitted again.
//!
//! Exact, never lenient: under GCRA a key's `tat` only grows (a refusal writes nothing and an
//! admission pushes it later), so a request Redis refused until `T` is refused by Redis until
//! `T` whoever asks. The cache records `T` from the moment the reply *arrived*, which is after
//! Redis computed it, so it may deny up to half a round trip longer than Redis would, and never
//! admits what Redis would refuse. Only explicit resets, unbans and allow-list changes can
//! shorten a refusal: they clear this instance's cache; other instances notice when their entry
//! ends (at most the refusal's `Retry-After`, at most one second for bans).

use std::time::Duration;

use crate::store::table::{Table, entry_key};
use crate::{PolicySet, Subject};

/// Bans are cached for at most this long, so an unban reaches every instance quickly.
const MAX_BAN_CACHE: Duration = Duration::from_secs(1);

pub(crate) struct DenyCache {
    table: Table,
}

impl DenyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            table: Table::new(capacity),
        }
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

    /// µs left of a cached refusal of this (subject, set, cost), if any.
    pub(crate) fn lookup(
        &self,
        subject: &Subject,
        set: &PolicySet,
        cost: u32,
        now: i64,
    ) -> Option<i64> {
        let (h, key) = self.key(subject, set, cost);
        self.table.shard(h).get(key, now).map(|until| until - now)
    }

    /// Remembers a refusal for `retry_after` from `now` (bans: at most one second).
    pub(crate) fn insert(
        &self,
        subject: &Subject,
        set: &PolicySet,
        cost: u32,
        now: i64,
        retry_after: Duration,
        ban: bool,
    ) {
        let retry_after = if ban {
            retry_after.min(MAX_BAN_CACHE)
        } else {
            retry_after
        };
        let until = now.saturating_add(i64::try_from(retry_after.as_micros()).unwrap_or(i64::MAX));
        let (h, key) = self.key(subject, set, cost);
        self.table.shard(h).insert(key, until, now);
    }

    pub(crate) fn clear(&self) {
        self.table.clear();
    }
}
