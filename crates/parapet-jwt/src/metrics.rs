//! Metric names (the `metrics` facade: install any recorder to collect them).

use parapet_core::StoreError;

/// Counter: requests the guard decided, labelled `result`: `allowed`, `anonymous` (no
/// token on an optional guard), `missing`, `malformed`, `invalid`, `revoked`,
/// `unavailable`.
pub const REQUESTS: &str = "parapet_jwt_requests_total";
/// Counter: requests checked while the revocation replica could not be confirmed current,
/// labelled `policy`: `fail_closed` (refused with 503), `check_store` (asked Redis),
/// `fail_open` (let through on what the replica knew).
pub const STALE: &str = "parapet_jwt_stale_total";
/// Counter: store failures, labelled `op` (`revoke`, `load`, `check`) and `kind`.
pub const STORE_ERRORS: &str = "parapet_jwt_store_errors_total";
/// Gauge: revoked tokens held by this instance's replica.
pub const REPLICA_TOKENS: &str = "parapet_jwt_replica_tokens";
/// Counter: revocations made wider than asked because a set was full or a subject had its
/// most revoked tokens, labelled `from` (`token`, `user`) and `to` (`user`, `all`).
pub const REVOCATIONS_WIDENED: &str = "parapet_jwt_revocations_widened_total";
/// Counter: times this instance found Redis's revocations lost or absent (a changed or new
/// generation marker) and refused every token issued before.
pub const DATA_LOSS: &str = "parapet_jwt_revocations_data_loss_total";
/// Counter: how replicas came back up to date after a lost subscription, labelled `how`:
/// `log` (caught up from the log of recent changes) or `load` (the log no longer held every
/// change since: everything loaded again).
pub const CATCH_UPS: &str = "parapet_jwt_replica_catch_ups_total";
/// Counter: JWKS fetches, labelled `result`: `ok`, `error`.
pub const JWKS_FETCHES: &str = "parapet_jwt_jwks_fetches_total";

pub(crate) fn request(result: &'static str) {
    // Literal labels make a static key: the results of every request count without an
    // allocation; a rejection's label is built as it comes.
    let counter = match result {
        "allowed" => metrics::counter!(REQUESTS, "result" => "allowed"),
        "anonymous" => metrics::counter!(REQUESTS, "result" => "anonymous"),
        other => metrics::counter!(REQUESTS, "result" => other),
    };
    counter.increment(1);
}

pub(crate) fn stale(policy: &'static str) {
    metrics::counter!(STALE, "policy" => policy).increment(1);
}

pub(crate) fn store_error(op: &'static str, error: &StoreError) {
    metrics::counter!(STORE_ERRORS, "op" => op, "kind" => error.kind()).increment(1);
}

pub(crate) fn replica_tokens(n: usize) {
    metrics::gauge!(REPLICA_TOKENS).set(n as f64);
}

pub(crate) fn widened(from: &'static str, to: &'static str) {
    metrics::counter!(REVOCATIONS_WIDENED, "from" => from, "to" => to).increment(1);
}

pub(crate) fn catch_up(how: &'static str) {
    metrics::counter!(CATCH_UPS, "how" => how).increment(1);
}

pub(crate) fn data_loss() {
    metrics::counter!(DATA_LOSS).increment(1);
}

#[cfg_attr(not(feature = "jwks-fetch"), allow(dead_code))]
pub(crate) fn jwks_fetch(ok: bool) {
    metrics::counter!(JWKS_FETCHES, "result" => if ok { "ok" } else { "error" }).increment(1);
}
