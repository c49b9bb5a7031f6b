//! Metric names and recording (the `metrics` facade: install any recorder, such as
//! `metrics-exporter-prometheus`, to collect them).

use std::sync::Arc;
use std::time::Duration;

use parapet_core::metrics::KeyedCounter;

/// Counter: decisions, labelled `policy` (a policy name, or `*` for decisions that involve
/// no policy) and `outcome` (`allowed`, `limited`, `banned`, `allow_listed`,
/// `missing_key`, `misconfigured`, `skipped`, `cost_exceeds_burst`, `memory_full`,
/// `fail_open`, `fail_closed`, and `shadow_limited`: a shadow policy would have refused an
/// admitted request). Refusals answered by the local deny cache are counted under
/// their policies like any other.
pub const DECISIONS: &str = "parapet_ratelimit_decisions_total";
/// Counter: refusals answered by the local deny cache, without a store call.
pub const LOCAL_DENIALS: &str = "parapet_ratelimit_local_denials_total";
/// Counter: store failures, labelled `kind` (`timeout`, `oom`, `redis`, `pool`, `reply`,
/// `circuit_open`) and `action` (`fail_open`, `fail_closed`, `fallback`, or `refund_lost`
/// for a refund that could not be made).
pub const STORE_ERRORS: &str = "parapet_ratelimit_store_errors_total";
/// Histogram: seconds per remote store call.
pub const STORE_SECONDS: &str = "parapet_ratelimit_store_seconds";
/// Counter: live in-memory counters evicted because the table was full
/// (`WhenFull::EvictNearestExpiry`); each may admit up to its policy's burst early.
pub const MEMORY_EVICTIONS: &str = "parapet_ratelimit_memory_evictions_total";
/// Counter: admitted requests whose charge was given back (`refund_when`).
pub const REFUNDS: &str = "parapet_ratelimit_refunds_total";
/// Counter: decisions refused because the in-memory table was full (`WhenFull::Refuse`).
pub const MEMORY_REFUSALS: &str = "parapet_ratelimit_memory_refusals_total";

/// A policy's decision counters, keyed once when the policy is built.
#[derive(Debug, Clone)]
pub(crate) struct PolicyCounters {
    allowed: KeyedCounter,
    limited: KeyedCounter,
    banned: KeyedCounter,
    shadow_limited: KeyedCounter,
}

impl PolicyCounters {
    pub(crate) fn new(policy: &Arc<str>) -> Self {
        let key = |outcome: &'static str| {
            KeyedCounter::new(
                DECISIONS,
                &[("policy", policy.clone()), ("outcome", outcome.into())],
            )
        };
        Self {
            allowed: key("allowed"),
            limited: key("limited"),
            banned: key("banned"),
            shadow_limited: key("shadow_limited"),
        }
    }

    pub(crate) fn allowed(&self) {
        self.allowed.increment();
    }

    pub(crate) fn limited(&self) {
        self.limited.increment();
    }

    pub(crate) fn banned(&self) {
        self.banned.increment();
    }

    /// A shadow policy would have refused an admitted request.
    pub(crate) fn shadow_limited(&self) {
        self.shadow_limited.increment();
    }
}

pub(crate) fn decision_without_policy(outcome: &'static str) {
    metrics::counter!(DECISIONS, "policy" => "*", "outcome" => outcome).increment(1);
}

pub(crate) fn local_denial() {
    metrics::counter!(LOCAL_DENIALS).increment(1);
}

pub(crate) fn store_error(kind: &'static str, action: &'static str) {
    metrics::counter!(STORE_ERRORS, "kind" => kind, "action" => action).increment(1);
}

pub(crate) fn store_latency(elapsed: Duration) {
    metrics::histogram!(STORE_SECONDS).record(elapsed.as_secs_f64());
}

/// `action` is `evict` (`count` entries went) or `refuse` (one decision refused).
pub(crate) fn memory_full(action: &'static str, count: usize) {
    let name = if action == "evict" {
        MEMORY_EVICTIONS
    } else {
        MEMORY_REFUSALS
    };
    metrics::counter!(name).increment(count as u64);
}

pub(crate) fn refund() {
    metrics::counter!(REFUNDS).increment(1);
}
