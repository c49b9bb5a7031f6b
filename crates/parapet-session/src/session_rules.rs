//! The timing and size rules a store enforces.

use std::time::Duration;

/// What the layer asks of a store on every call: expiry and size limits. Built by
/// [`SessionLayerBuilder`](crate::SessionLayerBuilder); stores read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRules {
    /// A session not used for this long is gone.
    pub idle_timeout: Duration,
    /// A session is gone this long after it was created, used or not.
    pub absolute_timeout: Duration,
    /// A read moves the idle expiry only when the last move is at least this old.
    pub touch_after: Duration,
    /// Most bytes of field names plus values in one session.
    pub max_session_bytes: usize,
}

impl SessionRules {
    /// Rules for calling a store directly (tests, tools); the layer builds its own from
    /// [`SessionLayerBuilder`](crate::SessionLayerBuilder).
    pub fn new(
        idle_timeout: Duration,
        absolute_timeout: Duration,
        touch_after: Duration,
        max_session_bytes: usize,
    ) -> Self {
        Self {
            idle_timeout,
            absolute_timeout,
            touch_after,
            max_session_bytes,
        }
    }

    pub(crate) fn idle_ms(&self) -> u64 {
        millis(self.idle_timeout)
    }
    pub(crate) fn absolute_ms(&self) -> u64 {
        millis(self.absolute_timeout)
    }
    pub(crate) fn touch_after_ms(&self) -> u64 {
        millis(self.touch_after)
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
