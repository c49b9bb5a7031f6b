//! Fixed windows through the layer: at most N per aligned window, `t` and `Retry-After`
//! name the window's end, alike in memory and on Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use parapet_core::ManualClock;
use parapet_ratelimit::{
    HeaderStyle, MemoryStore, Outcome, Quota, RateLimitLayer, RateLimitStore, RedisStore, Subject,
};
use parapet_testkit::RedisServer;

use common::{redis, request_from, send, service, set};

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

/// Three per minute in a sliding window: the fourth waits for the oldest to leave, and a
/// minute never holds more than three, across the window's edge too.
async fn sliding_suite<S: RateLimitStore>(store: S, clock: &ManualClock, what: &str) {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(3).sliding_window())
        .headers(HeaderStyle::Ietf)
        .clock(clock.clone())
        .store(store)
        .build()
        .unwrap();
    let mut svc = service(&layer);
    // At 0 s, 20 s and 40 s.
    for i in 0..3 {
        let response = send(&mut svc, request_from("192.0.2.21")).await;
        assert_eq!(response.status(), 200, "{what}: {i}");
        assert_eq!(
            response.headers()["ratelimit"],
            format!("\"minute\";r={};t=60", 2 - i),
            "{what}: full again a minute after the newest"
        );
        clock.advance(Duration::from_secs(20));
    }
    // At 60 s the first has just left: one fits, the next waits for the one of 20 s.
    assert_eq!(
        send(&mut svc, request_from("192.0.2.21")).await.status(),
        200,
        "{what}"
    );
    clock.advance(Duration::from_secs(5));
    let refused = send(&mut svc, request_from("192.0.2.21")).await;
    assert_eq!(refused.status(), 429, "{what}");
    assert_eq!(
        refused.headers()["retry-after"],
        "15",
        "{what}: the 20 s one leaves at 80 s"
    );
    assert_eq!(
        refused.headers()["ratelimit"],
        "\"minute\";r=0;t=55",
        "{what}: the newest (60 s) leaves at 120 s"
    );
    clock.advance(Duration::from_secs(15) - Duration::from_micros(1));
    assert_eq!(
        send(&mut svc, request_from("192.0.2.21")).await.status(),
        429,
        "{what}: a microsecond early"
    );
    clock.advance(Duration::from_micros(1));
    assert_eq!(
        send(&mut svc, request_from("192.0.2.21")).await.status(),
        200,
        "{what}: on time"
    );
}

#[tokio::test]
async fn sliding_windows_in_memory() {
    let clock = clock();
    sliding_suite(
        MemoryStore::with_clock(1000, clock.clone()),
        &clock,
        "memory",
    )
    .await;
}

#[tokio::test]
async fn sliding_windows_on_redis() {
    let clock = clock();
    let store = RedisStore::new(redis(RedisServer::shared().url()).await)
        .unwrap()
        .with_test_clock(clock.clone());
    sliding_suite(store, &clock, "redis").await;
}

#[test]
fn a_sliding_window_takes_no_burst_and_at_most_ten_thousand() {
    for quota in [
        Quota::per_minute(10).burst(20).sliding_window(),
        Quota::per_hour(10_001).sliding_window(),
    ] {
        assert!(
            RateLimitLayer::builder()
                .policy("m", quota)
                .build()
                .is_err(),
            "{quota:?}"
        );
    }
    assert!(
        RateLimitLayer::builder()
            .policy("m", Quota::per_hour(10_000).sliding_window())
            .build()
            .is_ok()
    );
}

/// A client hammering a full sliding window of 100 on Redis: the key never holds more than
/// 100 cells, its memory stays under 100 bytes a cell, and it carries a TTL.
#[tokio::test]
async fn a_sliding_window_key_is_bounded_on_redis() {
    let handle = redis(RedisServer::shared().url()).await;
    let store = RedisStore::new(handle.clone()).unwrap();
    let set = parapet_ratelimit::PolicySet::new([parapet_ratelimit::Policy::new(
        "minute",
        Quota::per_minute(100).sliding_window(),
    )
    .unwrap()])
    .unwrap();
    let subject = parapet_ratelimit::Subject::new("ip", "192.0.2.22");
    let mut admitted = 0;
    for _ in 0..300 {
        if store
            .check(&subject, &set, 1)
            .await
            .unwrap()
            .outcome
            .is_admitted()
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 100);
    let keys: Vec<String> = handle
        .query(parapet_core::Command::new("KEYS").arg("*minute.60000000x100.sw"))
        .await
        .unwrap();
    let [key] = &keys[..] else {
        panic!("one log key: {keys:?}")
    };
    let cells: i64 = handle
        .query(parapet_core::Command::new("ZCARD").arg(key))
        .await
        .unwrap();
    assert_eq!(cells, 100);
    let bytes: i64 = handle
        .query(parapet_core::Command::new("MEMORY").arg("USAGE").arg(key))
        .await
        .unwrap();
    assert!(bytes < 100 * 100, "{bytes} bytes for 100 cells");
    let ttl: i64 = handle
        .query(parapet_core::Command::new("PTTL").arg(key))
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
}

/// A sliding window's largest costs: 5,000 cells at once are admitted twice into a window
/// of 10,000, then one more is refused; on Redis that is 10,000 members written by one
/// script (in chunks: Lua cannot spread so many arguments into one `ZADD`).
#[tokio::test]
async fn a_sliding_window_takes_its_largest_costs() {
    let set = set(&[("hour", Quota::per_hour(10_000).sliding_window())]);
    let memory_clock = clock();
    let memory = MemoryStore::with_clock(1000, memory_clock.clone());
    let redis_clock = clock();
    let redis = RedisStore::new(redis(RedisServer::shared().url()).await)
        .unwrap()
        .with_test_clock(redis_clock.clone());
    let stores: [(&dyn RateLimitStore, &ManualClock, &str); 2] = [
        (&memory, &memory_clock, "memory"),
        (&redis, &redis_clock, "redis"),
    ];
    for (store, clock, what) in stores {
        let subject = Subject::new("largest", what);
        for expected in [Outcome::Allowed, Outcome::Allowed] {
            let decision = store.check(&subject, &set, 5_000).await.unwrap();
            assert_eq!(decision.outcome, expected, "{what}");
            clock.advance(Duration::from_millis(1));
        }
        let decision = store.check(&subject, &set, 1).await.unwrap();
        assert_eq!(decision.outcome, Outcome::Limited, "{what}");
        assert_eq!(decision.states[0].remaining, 0, "{what}");
    }
}

/// Two windows of one name and count whose lengths round to the same interval (1,000 and
/// 1,002 µs for 3: 334 µs each) are two policies with two states, in memory and on Redis.
#[tokio::test]
async fn windows_of_one_rounded_interval_keep_apart() {
    let server = RedisServer::shared();
    let redis = RedisStore::new(redis(server.url()).await).unwrap();
    let memory = MemoryStore::new(100);
    for kind in ["fixed", "sliding"] {
        let window = |micros| {
            let quota = Quota::new(3, Duration::from_micros(micros));
            let quota = if kind == "fixed" {
                quota.fixed_window()
            } else {
                quota.sliding_window()
            };
            parapet_ratelimit::Policy::new("w", quota).unwrap()
        };
        let (short, long) = (window(1_000_000), window(1_000_002));
        assert_ne!(short, long, "{kind}");
        let short = parapet_ratelimit::PolicySet::from(short);
        let long = parapet_ratelimit::PolicySet::from(long);
        let subject = Subject::new("windows", format!("apart-{kind}"));
        for (name, store) in [
            ("memory", &memory as &dyn RateLimitStore),
            ("redis", &redis as &dyn RateLimitStore),
        ] {
            let spent = store.check(&subject, &short, 3).await.unwrap();
            assert_eq!(spent.outcome, Outcome::Allowed, "{kind} {name}");
            let other = store.check(&subject, &long, 3).await.unwrap();
            assert_eq!(
                other.outcome,
                Outcome::Allowed,
                "{kind} {name}: shared a state"
            );
        }
    }
}
