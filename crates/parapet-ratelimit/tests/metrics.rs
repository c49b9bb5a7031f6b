//! The documented metrics are recorded: decisions by policy and outcome, local denials,
//! store errors by kind and action, and store latency.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use http::Request;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use parapet_core::{OnStoreError, RedisHandle};
use parapet_ratelimit::{Quota, RateLimitLayer, RedisStore, metrics as names};
use parapet_testkit::RedisServer;

use common::{request_from, send, send_together, service};

type Recorded = Vec<(metrics_util::CompositeKey, DebugValue)>;

/// Everything recorded so far (a snapshot drains the recorder: take it once).
fn recorded(recorder: &DebuggingRecorder) -> Recorded {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect()
}

/// Sum of a metric's values (histograms: sample count) whose labels include all of `labels`.
fn counter(recorded: &Recorded, name: &str, labels: &[(&str, &str)]) -> u64 {
    recorded
        .iter()
        .filter(|(key, _)| key.key().name() == name)
        .filter(|(key, _)| {
            labels
                .iter()
                .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(_, value)| match value {
            DebugValue::Counter(n) => *n,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => 0,
        })
        .sum()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn decisions_by_policy_and_outcome() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        runtime().block_on(async {
            let layer = RateLimitLayer::builder()
                .policy("minute", Quota::per_minute(2))
                .build()
                .unwrap();
            let mut svc = service(&layer);
            for _ in 0..3 {
                send(&mut svc, request_from("192.0.2.1")).await;
            }
            send(&mut svc, Request::new(())).await;
        });
    });
    let d = names::DECISIONS;
    let recorder = recorded(&recorder);
    assert_eq!(
        counter(
            &recorder,
            d,
            &[("policy", "minute"), ("outcome", "allowed")]
        ),
        2
    );
    assert_eq!(
        counter(
            &recorder,
            d,
            &[("policy", "minute"), ("outcome", "limited")]
        ),
        1
    );
    assert_eq!(
        counter(
            &recorder,
            d,
            &[("policy", "*"), ("outcome", "misconfigured")]
        ),
        1,
        "a request without a peer address is the server's misconfiguration"
    );
}

/// A limiter on `server` with one policy, a 50 ms deadline and `on_error`.
async fn redis_layer(
    server: &RedisServer,
    policy: &str,
    quota: Quota,
    on_error: OnStoreError,
) -> RateLimitLayer {
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let store = RedisStore::new(handle)
        .unwrap()
        .timeout(Duration::from_millis(50))
        .unwrap();
    RateLimitLayer::builder()
        .policy(policy, quota)
        .store(store)
        .on_store_error(on_error)
        .build()
        .unwrap()
}

#[test]
fn local_denials_store_errors_and_latency() {
    let mut server = RedisServer::start();
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        runtime().block_on(async {
            let layer = redis_layer(
                &server,
                "minute",
                Quota::per_minute(1),
                OnStoreError::FailOpen,
            )
            .await;
            let mut svc = service(&layer);
            common::in_sync(&layer).await;
            for _ in 0..4 {
                send(&mut svc, request_from("192.0.2.1")).await;
            }
            server.kill();
            for _ in 0..2 {
                send(&mut svc, request_from("192.0.2.2")).await;
            }
        });
    });
    let recorder = recorded(&recorder);
    assert_eq!(
        counter(&recorder, names::LOCAL_DENIALS, &[]),
        2,
        "refusals 3 and 4 answered locally"
    );
    assert_eq!(
        counter(&recorder, names::STORE_ERRORS, &[("action", "fail_open")]),
        2
    );
    assert_eq!(
        counter(&recorder, names::DECISIONS, &[("outcome", "fail_open")]),
        2
    );
    assert_eq!(
        counter(&recorder, names::STORE_SECONDS, &[]),
        4,
        "one latency sample per store call"
    );
}

/// The circuit breaker counts failed calls, not failed decisions: a batch of six that fails
/// counts once, so it takes two more failed calls before the breaker opens and the next
/// request is refused without a call (`kind="circuit_open"`).
#[test]
fn the_breaker_opens_after_three_failed_calls_not_decisions() {
    let mut server = RedisServer::start();
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        // One thread: the six requests are queued before the batcher runs (one call).
        runtime().block_on(async {
            let layer = redis_layer(
                &server,
                "second",
                Quota::per_second(1_000),
                OnStoreError::FailClosed,
            )
            .await;
            let mut svc = service(&layer);
            assert_eq!(
                send(&mut svc, request_from("192.0.2.1")).await.status(),
                200
            );
            server.kill();
            let batch = send_together(&layer, 6).await;
            for response in batch {
                assert_eq!(response.status(), 503);
            }
            // Failed calls two and three, one decision each; then the breaker is open.
            for i in 0..3 {
                let response = send(&mut svc, request_from(&format!("192.0.2.{}", 20 + i))).await;
                assert_eq!(response.status(), 503);
            }
        });
    });
    let recorder = recorded(&recorder);
    let all = counter(&recorder, names::STORE_ERRORS, &[]);
    let open = counter(&recorder, names::STORE_ERRORS, &[("kind", "circuit_open")]);
    assert_eq!(all, 9, "every refused request is a store error");
    assert_eq!(open, 1, "the ninth request found the breaker open");
}
