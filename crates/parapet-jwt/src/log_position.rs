//! Where a replica stands in the revocation log: the number of the last change up to which
//! it holds every change, without a hole.
//!
//! The log numbers changes `1-0`, `2-0`, …. The position moves only by reading the log (a
//! catch-up reads every change after it, a load starts from the newest one): announcements
//! heard on the channel are applied, but carry no number, so nothing published by anyone
//! else can move it. Reads are made one at a time (the caller holds a lock).

use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct LogPosition {
    /// None before the first load.
    at: Mutex<Option<u64>>,
}

impl LogPosition {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The position: every change up to it is held.
    pub(crate) fn get(&self) -> Option<u64> {
        *self.lock()
    }

    /// Every change after the position up to `n` was read from the log and applied (a
    /// catch-up), or everything up to `n` was loaded (a load: after Redis lost its data the
    /// numbering starts again lower).
    pub(crate) fn set(&self, n: u64) {
        *self.lock() = Some(n);
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
    fn ids_and_positions() {
        let position = LogPosition::default();
        assert_eq!(position.get(), None, "nothing before the first load");
        position.set(10);
        position.set(2);
        assert_eq!(position.get(), Some(2), "a load after a loss starts lower");
        assert_eq!(log_number(b"42-0"), Some(42));
        assert_eq!(log_number(b"42"), None);
        assert_eq!(log_number(b"x-0"), None);
    }
}
