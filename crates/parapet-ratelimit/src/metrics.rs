//! Metric names and recording (the `metrics` facade: install any recorder, such as
//! `metrics-exporter-prometheus`, to collect them).

use std::time::Duration;

/// Counter: decisions, labelled `policy` (a policy name, or `*` for decisions that involve
/// no policy) and `outcome` (`allowed`, `limited`, `banned`, `allow_listed`,
/// `missing_key`, `skipped`, `cost_exceeds_burst`, `fail_open`, `fail_closed`).
pub const DECISIONS: &str = "parapet_ratelimit_decisions_total";
/// Counter: refusals answered by the local deny cache, without a store call.
pub const LOCAL_DENIALS: &str = "parapet_ratelimit_local_denials_total";
/// Counter: store failures, labelled `kind` (`timeout`, `redis`, `pool`, `reply`,
/// `circuit_open`) and `action` (`fail_open`, `fail_closed`, `fallback`).
pub const STORE_ERRORS: &str = "parapet_ratelimit_store_errors_total";
/// Histogram: seconds per remote store call.
pub const STORE_SECONDS: &str = "parapet_ratelimit_store_seconds";

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// A policy's decision counters, keyed once when the policy is built: a decision then
/// increments a counter without building and hashing a key.
#[derive(Debug)]
pub(crate) struct PolicyCounters {
    allowed: metrics::Key,
    limited: metrics::Key,
}

impl PolicyCounters {
    pub(crate) fn new(policy: &std::sync::Arc<str>) -> Self {
        let key = |outcome: &'static str| {
            metrics::Key::from_parts(
                DECISIONS,
                vec![
                    metrics::Label::new(
                        "policy",
                        metrics::SharedString::from_shared(policy.clone()),
                    ),
                    metrics::Label::new("outcome", outcome),
                ],
            )
        };
        Self {
            allowed: key("allowed"),
            limited: key("limited"),
        }
    }

    pub(crate) fn allowed(&self) {
        increment(&self.allowed);
    }

    pub(crate) fn limited(&self) {
        increment(&self.limited);
    }
}

fn increment(key: &metrics::Key) {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(1));
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
