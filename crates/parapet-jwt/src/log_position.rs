//! Where a replica stands in the revocation log: the number of the last change up to which
//! it holds every change, without a hole.
//!
//! The log numbers changes `1-0`, `2-0`, …; announcements carry the number. A change heard
//! right after the position moves it; one heard past a hole (while a catch-up is under way,
//! or after a lost message) waits in a small set until the hole is filled, by the catch-up
//! or by the changes in between. So the position never passes a change the replica lacks,
//! and the next catch-up starts from the right place however resyncs overlap.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Changes heard past a hole that are remembered; more are dropped (a catch-up from the
/// log covers them anyway).
const MAX_PENDING: usize = 65_536;

#[derive(Default)]
pub(crate) struct LogPosition {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// None before the first load.
    at: Option<u64>,
    pending: BTreeSet<u64>,
}

impl Inner {
    fn fill(&mut self) {
        let Some(mut at) = self.at else { return };
        while self.pending.remove(&(at + 1)) {
            at += 1;
        }
        self.at = Some(at);
        self.pending.retain(|&n| n > at);
    }
}

impl LogPosition {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The position: every change up to it is held.
    pub(crate) fn get(&self) -> Option<u64> {
        self.lock().at
    }

    /// Change `n` was heard and applied.
    pub(crate) fn heard(&self, n: u64) {
        let mut inner = self.lock();
        let Some(at) = inner.at else { return };
        if n <= at {
            return;
        }
        if inner.pending.len() >= MAX_PENDING {
            inner.pending.clear();
        }
        inner.pending.insert(n);
        inner.fill();
    }

    /// Every change after the position up to `n` was applied (a catch-up).
    pub(crate) fn caught_up(&self, n: u64) {
        let mut inner = self.lock();
        inner.at = Some(inner.at.map_or(n, |at| at.max(n)));
        inner.fill();
    }

    /// Everything up to `n` was loaded, the position starts there (a load: after Redis lost
    /// its data, the numbering starts again lower).
    pub(crate) fn reset(&self, n: u64) {
        let mut inner = self.lock();
        inner.at = Some(n);
        inner.fill();
    }
}

/// The number of a log id `<n>-<seq>`.
pub(crate) fn log_number(id: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(id).ok()?;
    let (n, seq) = text.split_once('-')?;
    seq.parse::<u64>().ok()?;
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_never_passes_a_hole() {
        let position = LogPosition::default();
        position.heard(3);
        assert_eq!(position.get(), None, "nothing before the first load");
        position.reset(10);
        position.heard(11);
        assert_eq!(position.get(), Some(11));
        // 12 to 15 missed (a lost subscription); 16 and 17 heard after the resync.
        position.heard(16);
        position.heard(17);
        assert_eq!(position.get(), Some(11), "a hole at 12");
        // A second resync now starts from 11, not 17; its catch-up reaches 14.
        position.caught_up(14);
        assert_eq!(position.get(), Some(14));
        position.heard(15);
        assert_eq!(
            position.get(),
            Some(17),
            "the hole filled, the pending changes count"
        );
        // Redis lost its data: the numbering starts again.
        position.reset(2);
        assert_eq!(position.get(), Some(2));
        position.heard(3);
        assert_eq!(position.get(), Some(3));
        assert_eq!(log_number(b"42-0"), Some(42));
        assert_eq!(log_number(b"42"), None);
    }
}
