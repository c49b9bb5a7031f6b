//! Shadow (dry-run) policies: decided and reported, never refusing; the same on memory and
//! Redis; and their state carries over when they are enforced.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use parapet_core::ManualClock;
use parapet_ratelimit::{
    HeaderStyle, MemoryStore, Quota, RateLimitLayer, RateLimitStore, RedisStore,
};
use parapet_testkit::RedisServer;

use common::{redis, request_from, send, service};

fn layer<S: RateLimitStore + Clone>(
    store: &S,
    clock: &ManualClock,
    shadow: bool,
) -> RateLimitLayer {
    let mut builder = RateLimitLayer::builder()
        .policy("hour", Quota::per_hour(100))
        .headers(HeaderStyle::Ietf)
        .clock(clock.clone());
    builder = if shadow {
        builder.shadow_policy("minute", Quota::per_minute(3))
    } else {
        builder.policy("minute", Quota::per_minute(3))
    };
    builder.store(store.clone()).build().unwrap()
}

/// Six requests through a shadow "minute" of 3: all admitted, its field at r=0 from the
/// third; then the same policy enforced on the same store refuses at once.
async fn suite<S: RateLimitStore + Clone>(
    store: S,
    clock: &ManualClock,
    what: &str,
) -> Vec<String> {
    let mut svc = service(&layer(&store, clock, true));
    let mut fields = Vec::new();
    for i in 0..6 {
        let response = send(&mut svc, request_from("192.0.2.9")).await;
        assert_eq!(response.status(), 200, "{what}: request {i}");
        let field = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            field.contains(&format!("\"hour\";r={}", 99 - i)),
            "{what}: {field}"
        );
        let minute_left = 2u64.saturating_sub(i);
        assert!(
            field.contains(&format!("\"minute\";r={minute_left}")),
            "{what} {i}: {field}"
        );
        fields.push(field);
    }
    let mut enforced = service(&layer(&store, clock, false));
    let refused = send(&mut enforced, request_from("192.0.2.9")).await;
    assert_eq!(
        refused.status(),
        429,
        "{what}: the shadow's state carried over"
    );
    let other = send(&mut enforced, request_from("192.0.2.10")).await;
    assert_eq!(other.status(), 200, "{what}");
    fields
}

#[tokio::test]
async fn shadow_policies_report_but_never_refuse_alike_in_memory_and_on_redis() {
    let clock = ManualClock::new();
    clock.set_micros(1_700_000_000_000_000);
    let memory = suite(
        MemoryStore::with_clock(1000, clock.clone()),
        &clock,
        "memory",
    )
    .await;
    let clock = ManualClock::new();
    clock.set_micros(1_700_000_000_000_000);
    let server = RedisServer::shared();
    let store = RedisStore::new(redis(server.url()).await)
        .unwrap()
        .with_test_clock(clock.clone());
    let on_redis = suite(store, &clock, "redis").await;
    assert_eq!(memory, on_redis, "memory and Redis report the same fields");
}

#[test]
fn shadow_refusals_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let clock = ManualClock::new();
            let store = MemoryStore::with_clock(1000, clock.clone());
            let mut svc = service(&layer(&store, &clock, true));
            for _ in 0..5 {
                assert_eq!(
                    send(&mut svc, request_from("192.0.2.11")).await.status(),
                    200
                );
            }
        });
    });
    let shadow_limited: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| {
            let labels: Vec<_> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            key.key().name() == "parapet_ratelimit_decisions_total"
                && labels.contains(&("policy".into(), "minute".into()))
                && labels.contains(&("outcome".into(), "shadow_limited".into()))
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(
        shadow_limited, 2,
        "requests 4 and 5 would have been refused"
    );
}
