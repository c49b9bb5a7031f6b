//! Purges by path prefix and by tag in O(1): a purge is one record (prefix or tag → when),
//! and a stored response older than a record that covers it counts as gone (hard) or stale
//! (soft). Nothing is scanned when a purge is made; a lookup checks the response's path
//! prefixes and tags, and only while any record is alive.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::StoredResponse;

/// How a purge treats what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Purged {
    /// Served only after revalidation (or within its stale windows).
    Soft,
    /// Gone.
    Hard,
}

/// The most purge records kept; past it they collapse into one that purges everything.
pub(crate) const MAX_RECORDS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    at: SystemTime,
    how: Purged,
}

#[derive(Debug, Default)]
pub(crate) struct Purges {
    any: AtomicBool,
    records: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    prefixes: HashMap<String, Record>,
    tags: HashMap<String, Record>,
}

/// How a purge was recorded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    Done,
    /// Too many records: they were collapsed into one that purges everything older.
    Collapsed,
}

impl Purges {
    pub(crate) fn prefix(
        &self,
        prefix: &str,
        how: Purged,
        now: SystemTime,
        forget_after: Duration,
    ) -> Recorded {
        self.record(|r| &mut r.prefixes, prefix, how, now, forget_after)
    }

    pub(crate) fn tag(
        &self,
        tag: &str,
        how: Purged,
        now: SystemTime,
        forget_after: Duration,
    ) -> Recorded {
        self.record(|r| &mut r.tags, tag, how, now, forget_after)
    }

    fn record(
        &self,
        map: impl Fn(&mut Records) -> &mut HashMap<String, Record>,
        name: &str,
        how: Purged,
        now: SystemTime,
        forget_after: Duration,
    ) -> Recorded {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A record older than the longest time anything is stored covers nothing any more.
        let horizon = now
            .checked_sub(forget_after)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        records.prefixes.retain(|_, r| r.at > horizon);
        records.tags.retain(|_, r| r.at > horizon);
        if records.prefixes.len() + records.tags.len() >= MAX_RECORDS {
            // Too many to keep: one record, the empty prefix (which covers every path),
            // purges everything received before the latest of them. Over-purging is safe.
            let latest = records
                .prefixes
                .values()
                .chain(records.tags.values())
                .map(|r| r.at)
                .fold(now, SystemTime::max);
            records.prefixes.clear();
            records.tags.clear();
            records.prefixes.insert(
                String::new(),
                Record {
                    at: latest,
                    how: Purged::Hard,
                },
            );
            self.any.store(true, Ordering::Release);
            return Recorded::Collapsed;
        }
        let slot = map(&mut records)
            .entry(name.to_owned())
            .or_insert(Record { at: now, how });
        // Notices from other instances may arrive out of order: the latest purge counts.
        slot.at = slot.at.max(now);
        slot.how = slot.how.max(how);
        self.any.store(true, Ordering::Release);
        Recorded::Done
    }

    /// How the records cover `response`, if they do.
    pub(crate) fn check(&self, response: &StoredResponse) -> Option<Purged> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let newer = |r: &Record| (r.at >= response.received).then_some(r.how);
        let path = response.key.path();
        let mut verdict = None;
        let boundaries = path.match_indices('/').map(|(i, _)| i).chain([path.len()]);
        for end in boundaries {
            for candidate in [&path[..end], path.get(..=end).unwrap_or(path)] {
                if let Some(how) = records.prefixes.get(candidate).and_then(newer) {
                    verdict = verdict.max(Some(how));
                }
            }
        }
        for tag in &response.tags {
            if let Some(how) = records.tags.get(tag).and_then(newer) {
                verdict = verdict.max(Some(how));
            }
        }
        verdict
    }
}

impl Purges {
    /// Records a purge another instance made (or one read back after a resubscription).
    pub(crate) fn apply(&self, notice: &crate::PurgeNotice, forget_after: Duration) -> Recorded {
        let how = if notice.soft {
            Purged::Soft
        } else {
            Purged::Hard
        };
        if notice.prefix {
            self.prefix(&notice.name, how, notice.at, forget_after)
        } else {
            self.tag(&notice.name, how, notice.at, forget_after)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::tests::sample;

    #[test]
    fn too_many_records_collapse_into_one_that_purges_everything_older() {
        let purges = Purges::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let forget = Duration::from_secs(86_400);
        let mut stored = sample();
        stored.received = t0;
        assert_eq!(purges.check(&stored), None);
        for i in 0..MAX_RECORDS {
            let at = t0 + Duration::from_secs(1);
            assert_eq!(
                purges.tag(&format!("t{i}"), Purged::Soft, at, forget),
                Recorded::Done
            );
        }
        let later = t0 + Duration::from_secs(2);
        assert_eq!(
            purges.tag("one-more", Purged::Soft, later, forget),
            Recorded::Collapsed
        );
        assert_eq!(
            purges.check(&stored),
            Some(Purged::Hard),
            "older than the collapse"
        );
        stored.received = later + Duration::from_secs(1);
        assert_eq!(purges.check(&stored), None, "newer entries are untouched");
    }
}
