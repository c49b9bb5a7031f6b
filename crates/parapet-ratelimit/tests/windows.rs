//! Fixed windows through the layer: at most N per aligned window, `t` and `Retry-After`
//! name the window's end, alike in memory and on Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use parapet_core::ManualClock;
use parapet_ratelimit::{
    HeaderStyle, MemoryStore, Quota, RateLimitLayer, RateLimitStore, RedisStore,
};
use parapet_testkit::RedisServer;

use common::{redis, request_from, send, service};

async fn suite<S: RateLimitStore>(store: S, clock: &ManualClock, what: &str) {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(3).fixed_window())
        .headers(HeaderStyle::Ietf)
        .clock(clock.clone())
        .store(store)
        .build()
        .unwrap();
    let mut svc = service(&layer);
    for i in 0..3 {
        let response = send(&mut svc, request_from("192.0.2.20")).await;
        assert_eq!(response.status(), 200, "{what}: {i}");
        assert_eq!(
            response.headers()["ratelimit"],
            format!("\"minute\";r={};t=50", 2 - i),
            "{what}"
        );
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"minute\";q=3;w=60",
            "{what}"
        );
    }
    let refused = send(&mut svc, request_from("192.0.2.20")).await;
    assert_eq!(refused.status(), 429, "{what}");
    assert_eq!(
        refused.headers()["retry-after"],
        "50",
        "{what}: the window's end"
    );
    assert_eq!(
        refused.headers()["ratelimit"],
        "\"minute\";r=0;t=50",
        "{what}"
    );
    // 49 s later still the same window; at its end a fresh one.
    clock.advance(Duration::from_secs(49));
    assert_eq!(
        send(&mut svc, request_from("192.0.2.20")).await.status(),
        429,
        "{what}"
    );
    clock.advance(Duration::from_secs(1));
    let response = send(&mut svc, request_from("192.0.2.20")).await;
    assert_eq!(response.status(), 200, "{what}");
    assert_eq!(
        response.headers()["ratelimit"],
        "\"minute\";r=2;t=60",
        "{what}"
    );
}

/// 10 s into a minute of the epoch.
fn clock() -> ManualClock {
    let clock = ManualClock::new();
    // 1,700,000,040 s after the epoch is a whole minute.
    clock.set_micros(1_700_000_040_000_000 + 10_000_000);
    clock
}

#[tokio::test]
async fn fixed_windows_in_memory() {
    let clock = clock();
    suite(
        MemoryStore::with_clock(1000, clock.clone()),
        &clock,
        "memory",
    )
    .await;
}

#[tokio::test]
async fn fixed_windows_on_redis() {
    let clock = clock();
    let store = RedisStore::new(redis(RedisServer::shared().url()).await)
        .unwrap()
        .with_test_clock(clock.clone());
    suite(store, &clock, "redis").await;
}

#[test]
fn a_fixed_window_takes_no_burst() {
    let quota = Quota::per_minute(10).burst(20).fixed_window();
    assert!(
        RateLimitLayer::builder()
            .policy("m", quota)
            .build()
            .is_err()
    );
}
