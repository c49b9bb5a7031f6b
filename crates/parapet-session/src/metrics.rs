//! Metric names (the `metrics` facade: install any recorder to collect them).

use parapet_core::StoreError;

/// Counter: sessions created, labelled `reason`: `new` (first write of an anonymous
/// session), `login` (`set_user`).
pub const CREATED: &str = "parapet_session_created_total";
/// Counter: id rotations, labelled `reason`: `privilege` (`rotate`), `periodic`
/// (`rotate_every`, with the grace window).
pub const ROTATED: &str = "parapet_session_rotations_total";
/// Counter: sessions ended to make room under `OverLimit::EvictOldest`.
pub const EVICTED: &str = "parapet_session_evicted_total";
/// Counter: anonymous sessions evicted, least recently used first, to make room for a new
/// one within the store's anonymous budget (logged-in sessions are never evicted for them).
pub const ANONYMOUS_EVICTED: &str = "parapet_session_anonymous_evicted_total";
/// Counter: logins refused under `OverLimit::RejectNew`.
pub const REJECTED: &str = "parapet_session_rejected_logins_total";
/// Counter: cookies holding a well-formed id the store does not know (expired, revoked,
/// or guessed).
pub const UNKNOWN: &str = "parapet_session_unknown_ids_total";
/// Counter: store failures, labelled `op` (`load`, `save`, `create`, `rotate`, `incr`,
/// `delete`, `list`, `revoke`) and `kind` (`timeout`, `redis`, `capacity`, …). Each is
/// answered with a 503, never with a new empty session.
pub const STORE_ERRORS: &str = "parapet_session_store_errors_total";

pub(crate) fn store_error(op: &'static str, error: &StoreError) {
    metrics::counter!(STORE_ERRORS, "op" => op, "kind" => error.kind()).increment(1);
}

pub(crate) fn created(reason: &'static str) {
    metrics::counter!(CREATED, "reason" => reason).increment(1);
}

pub(crate) fn rotated(reason: &'static str) {
    metrics::counter!(ROTATED, "reason" => reason).increment(1);
}

pub(crate) fn evicted(n: u32) {
    if n > 0 {
        metrics::counter!(EVICTED).increment(u64::from(n));
    }
}

pub(crate) fn anonymous_evicted(n: usize) {
    if n > 0 {
        metrics::counter!(ANONYMOUS_EVICTED).increment(n as u64);
    }
}

pub(crate) fn rejected() {
    metrics::counter!(REJECTED).increment(1);
}

pub(crate) fn unknown() {
    metrics::counter!(UNKNOWN).increment(1);
}
