//! One suite, every store: the in-process store, Redis standalone and Redis Cluster must
//! behave the same for the operations of `RateLimitStore`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use parapet_core::{HashTag, KeySecret, ManualClock, RedisHandle};
use parapet_ratelimit::{
    MemoryStore, Outcome, PolicySet, Quota, RateLimitStore, RedisStore, Subject,
};
use parapet_testkit::{RedisCluster, RedisServer};

use common::set;

async fn suite(store: &dyn RateLimitStore, clock: &ManualClock, case: &str) {
    let subject = |name: &str| Subject::new("test", format!("{case}-{name}"));
    let second_3 = set(&[("second", Quota::per_second(3))]);

    // A full burst, then a refusal with an exact retry-after.
    let alice = subject("alice");
    for remaining in [2, 1, 0] {
        let d = store.check(&alice, &second_3, 1).await.unwrap();
        assert_eq!(d.outcome, Outcome::Allowed, "{case}");
        assert_eq!(d.states[0].remaining, remaining, "{case}");
    }
    let refused = store.check(&alice, &second_3, 1).await.unwrap();
    assert_eq!(refused.outcome, Outcome::Limited, "{case}");
    assert_eq!(
        refused.retry_after,
        Some(Duration::from_micros(333_334)),
        "{case}"
    );
    assert_eq!(refused.states[0].remaining, 0);
    clock.advance(Duration::from_micros(333_333));
    assert_eq!(
        store.check(&alice, &second_3, 1).await.unwrap().outcome,
        Outcome::Limited,
        "{case}: 1us early"
    );
    clock.advance(Duration::from_micros(1));
    assert_eq!(
        store.check(&alice, &second_3, 1).await.unwrap().outcome,
        Outcome::Allowed,
        "{case}: on time"
    );

    // Every entry point checks its own arguments: a cost no burst can hold, a ban of no
    // time or of more than ten years.
    let dave = subject("dave");
    for err in [
        store.check(&dave, &second_3, 4).await.unwrap_err(),
        store.check(&dave, &second_3, u32::MAX).await.unwrap_err(),
        store.ban(&dave, Duration::ZERO).await.unwrap_err(),
        store
            .ban(&dave, Duration::from_secs(11 * 365 * 86_400))
            .await
            .unwrap_err(),
        store.allow(&dave, Duration::ZERO).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), "argument", "{case}: {err}");
    }
    assert_eq!(
        store.check(&dave, &second_3, 0).await.unwrap().states[0].remaining,
        3,
        "{case}: refused calls wrote nothing"
    );

    // A refund gives one charge back, and no more than the state held.
    let erin = subject("erin");
    for _ in 0..3 {
        store.check(&erin, &second_3, 1).await.unwrap();
    }
    store.refund(&erin, &second_3, 1).await.unwrap();
    let d = store.check(&erin, &second_3, 0).await.unwrap();
    assert_eq!(d.states[0].remaining, 1, "{case}: one cell back");
    for _ in 0..5 {
        store.refund(&erin, &second_3, 1).await.unwrap();
    }
    let d = store.check(&erin, &second_3, 0).await.unwrap();
    assert_eq!(
        d.states[0].remaining, 3,
        "{case}: never more than a full burst"
    );
    assert_eq!(
        store.refund(&erin, &second_3, 4).await.unwrap_err().kind(),
        "argument",
        "{case}"
    );

    // Reading the state charges nothing.
    let bob = subject("bob");
    for _ in 0..5 {
        let d = store.check(&bob, &second_3, 0).await.unwrap();
        assert_eq!(d.states[0].remaining, 3, "{case}");
    }

    // Several policies: all or nothing.
    let two = set(&[
        ("loose", Quota::per_second(100)),
        ("strict", Quota::per_second(1)),
    ]);
    let carol = subject("carol");
    assert_eq!(
        store.check(&carol, &two, 1).await.unwrap().outcome,
        Outcome::Allowed
    );
    let d = store.check(&carol, &two, 1).await.unwrap();
    assert_eq!(d.outcome, Outcome::Limited, "{case}");
    assert_eq!(
        d.states[0].remaining, 99,
        "{case}: the loose policy was not charged"
    );
    assert!(d.states[0].retry_after.is_none() && d.states[1].retry_after.is_some());

    // Weighted cost.
    let dave = subject("dave");
    let ten = set(&[("ten", Quota::per_second(10))]);
    assert_eq!(
        store.check(&dave, &ten, 7).await.unwrap().states[0].remaining,
        3
    );
    let d = store.check(&dave, &ten, 4).await.unwrap();
    assert_eq!(d.outcome, Outcome::Limited);
    assert_eq!(d.retry_after, Some(Duration::from_millis(100)));

    // Reset.
    store.reset(&dave, &ten).await.unwrap();
    assert_eq!(
        store.check(&dave, &ten, 0).await.unwrap().states[0].remaining,
        10,
        "{case}"
    );

    // Ban and unban.
    let eve = subject("eve");
    store.ban(&eve, Duration::from_secs(60)).await.unwrap();
    let d = store.check(&eve, &ten, 1).await.unwrap();
    assert_eq!(d.outcome, Outcome::Banned, "{case}");
    let left = d.retry_after.unwrap();
    assert!(
        left > Duration::from_secs(59) && left <= Duration::from_secs(60),
        "{case}: {left:?}"
    );
    store.unban(&eve).await.unwrap();
    assert_eq!(
        store.check(&eve, &ten, 1).await.unwrap().outcome,
        Outcome::Allowed
    );

    // Allow list: uncounted.
    let frank = subject("frank");
    store.allow(&frank, Duration::from_secs(60)).await.unwrap();
    for _ in 0..20 {
        assert_eq!(
            store.check(&frank, &ten, 1).await.unwrap().outcome,
            Outcome::AllowListed
        );
    }
    store.unallow(&frank).await.unwrap();
    assert_eq!(
        store.check(&frank, &ten, 0).await.unwrap().states[0].remaining,
        10
    );
}

#[tokio::test]
async fn memory_store() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(1));
    let store = MemoryStore::with_clock(1000, clock.clone());
    suite(&store, &clock, "memory").await;
}

#[tokio::test]
async fn redis_store() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    clock.set_micros(1_700_000_000_000_000);
    let store = RedisStore::new(RedisHandle::builder(server.url()).build().await.unwrap())
        .unwrap()
        .with_test_clock(clock.clone());
    suite(&store, &clock, "redis").await;
    assert_every_key_has_a_ttl(&server);
}

#[tokio::test]
async fn redis_cluster_store() {
    let cluster = RedisCluster::start();
    let clock = ManualClock::new();
    clock.set_micros(1_700_000_000_000_000);
    let handle = RedisHandle::cluster(cluster.urls()).build().await.unwrap();
    let store = RedisStore::new(handle)
        .unwrap()
        .with_test_clock(clock.clone());
    suite(&store, &clock, "cluster").await;
    for node in cluster.nodes() {
        assert_every_key_has_a_ttl(node);
    }
}

/// With Redis's own clock, the decisions that do not depend on waiting hold too.
#[tokio::test]
async fn redis_store_on_server_time() {
    let server = RedisServer::start();
    let store = RedisStore::new(RedisHandle::builder(server.url()).build().await.unwrap()).unwrap();
    let subject = Subject::new("test", "server-time");
    // 100 an hour: one given back every 36 s, so however slow this machine is, the 101st
    // comes before a refill.
    let minute = set(&[("minute", Quota::per_hour(100))]);
    let started = std::time::Instant::now();
    for i in 0..100 {
        assert_eq!(
            store.check(&subject, &minute, 1).await.unwrap().outcome,
            Outcome::Allowed,
            "request {i}"
        );
    }
    let d = store.check(&subject, &minute, 1).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(d.outcome, Outcome::Limited);
    // The 101st waits one interval (36 s) after the first admission, less the time the
    // 101 calls took.
    let retry = d.retry_after.unwrap();
    let interval = Duration::from_secs(36);
    assert!(
        retry <= interval && retry + elapsed >= interval,
        "{retry:?} after {elapsed:?}"
    );
    assert_every_key_has_a_ttl(&server);
    // Keys name the subject by hash only.
    let keys = server.command(&["KEYS", "*"]);
    assert!(!keys.contains("server-time"), "{keys}");
    assert!(keys.starts_with("parapet:rl:{"), "{keys}");
}

/// On the server's clock, each key's expiry is its state's end, rounded up to a
/// millisecond: never earlier (a live limit would vanish), never later (Redis memory). The
/// differential test runs on a test clock, under which keys outlive their states on
/// purpose, so the expiries themselves are held to account here, in real time: the
/// reading may only have lost what elapsed since the call.
#[tokio::test]
async fn each_key_expires_when_its_state_ends() {
    let server = RedisServer::start();
    let store = RedisStore::new(RedisHandle::builder(server.url()).build().await.unwrap()).unwrap();
    let redis_micros = || {
        let time = server.command(&["TIME"]);
        let mut parts = time.lines().map(|p| p.parse::<i64>().unwrap());
        parts.next().unwrap() * 1_000_000 + parts.next().unwrap()
    };
    let only_key_ttl = || {
        let keys = server.command(&["KEYS", "parapet:rl:*"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let ttl = server.command(&["PTTL", keys[0]]);
        ttl.trim_start_matches(':').parse::<i64>().unwrap()
    };
    let subject = Subject::new("test", "expiry");
    // (state's life in ms as Redis will count it, from Redis's clock before and after)
    type Life = fn(i64, i64) -> (i64, i64);
    let cases: [(&str, PolicySet, Life); 3] = [
        // One cell of 10 a minute: the TAT is one interval (6 s) ahead.
        ("gcra", set(&[("minute", Quota::per_minute(10))]), |_, _| {
            (6_000, 6_000)
        }),
        // The window ends at the next multiple of a minute since the epoch.
        (
            "fixed window",
            set(&[("minute", Quota::per_minute(10).fixed_window())]),
            |before, after| {
                let end = |t: i64| (t / 60_000_000 + 1) * 60_000_000;
                (
                    (end(after) - after + 999) / 1000,
                    (end(before) - before + 999) / 1000,
                )
            },
        ),
        // The newest cell leaves the window a minute from now.
        (
            "sliding window",
            set(&[("minute", Quota::per_minute(10).sliding_window())]),
            |_, _| (60_000, 60_000),
        ),
    ];
    for (name, policies, life) in cases {
        server.command(&["FLUSHALL"]);
        let started = std::time::Instant::now();
        let before = redis_micros();
        let decision = store.check(&subject, &policies, 1).await.unwrap();
        let after = redis_micros();
        assert_eq!(decision.outcome, Outcome::Allowed, "{name}");
        let ttl = only_key_ttl();
        let elapsed = started.elapsed().as_millis() as i64;
        let (shortest, longest) = life(before, after);
        assert!(
            ttl <= longest && ttl >= shortest - elapsed - 1,
            "{name}: PTTL {ttl} ms, state lives {shortest}..={longest} ms, {elapsed} ms ago"
        );
    }
    server.command(&["FLUSHALL"]);
    let started = std::time::Instant::now();
    store.ban(&subject, Duration::from_secs(30)).await.unwrap();
    let ttl = only_key_ttl();
    let elapsed = started.elapsed().as_millis() as i64;
    assert!(
        ttl <= 30_000 && ttl >= 30_000 - elapsed - 1,
        "ban: PTTL {ttl} ms, {elapsed} ms ago"
    );
}

/// Bans and allow entries written through one instance are seen by another (separate
/// connections, same Redis), on the server's clock.
#[tokio::test]
async fn bans_and_allow_entries_are_shared_across_instances() {
    let server = RedisServer::start();
    let a = RedisStore::new(RedisHandle::builder(server.url()).build().await.unwrap()).unwrap();
    let b = RedisStore::new(RedisHandle::builder(server.url()).build().await.unwrap()).unwrap();
    let minute = set(&[("minute", Quota::per_minute(1))]);
    let mallory = Subject::new("test", "mallory");
    a.ban(&mallory, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        b.check(&mallory, &minute, 1).await.unwrap().outcome,
        Outcome::Banned
    );
    b.unban(&mallory).await.unwrap();
    assert_eq!(
        a.check(&mallory, &minute, 1).await.unwrap().outcome,
        Outcome::Allowed
    );
    assert_eq!(
        b.check(&mallory, &minute, 1).await.unwrap().outcome,
        Outcome::Limited,
        "the limit is shared too"
    );
    let probe = Subject::new("test", "probe");
    b.allow(&probe, Duration::from_secs(60)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            a.check(&probe, &minute, 1).await.unwrap().outcome,
            Outcome::AllowListed
        );
    }
}

fn assert_every_key_has_a_ttl(server: &RedisServer) {
    let keys = server.command(&["KEYS", "*"]);
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let ttl = server.command(&["PTTL", key]);
        let ms: i64 = ttl.trim_start_matches(':').parse().unwrap();
        // -1 is "no TTL"; -2 (gone) and 0 (under a millisecond left) are fine.
        assert_ne!(ms, -1, "{key} has no TTL");
    }
}

/// A Redis clock that steps back (a failover to a server whose clock is behind) costs a
/// client at most one window, never the size of the step.
#[tokio::test]
async fn a_clock_step_back_costs_at_most_one_window() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let now = ManualClock::new();
    now.set_micros(1_700_000_000_000_000);
    let earlier = ManualClock::new();
    earlier.set_micros(1_700_000_000_000_000 - 3_600_000_000);
    let ahead = RedisStore::new(handle.clone())
        .unwrap()
        .with_test_clock(now);
    let behind = RedisStore::new(handle).unwrap().with_test_clock(earlier);
    let minute = set(&[("minute", Quota::per_minute(10))]);
    let subject = Subject::new("test", "clock-step");
    for _ in 0..10 {
        ahead.check(&subject, &minute, 1).await.unwrap();
    }
    let refused = behind.check(&subject, &minute, 1).await.unwrap();
    assert_eq!(refused.outcome, Outcome::Limited);
    let retry = refused.retry_after.unwrap();
    assert!(
        retry <= Duration::from_secs(6),
        "one interval at most, got {retry:?}"
    );
    assert!(refused.states[0].reset_after <= Duration::from_secs(60));
}

/// With a key secret, no key holds the plain SHA-256 of a subject (which anyone could
/// compute for every IPv4 address), and the limit is shared as before.
#[tokio::test]
async fn a_key_secret_keeps_subjects_out_of_the_keys() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let secret = || KeySecret::new("a per-deployment secret of 32 bytes").unwrap();
    let a = RedisStore::new(handle.clone())
        .unwrap()
        .key_secret(secret());
    let b = RedisStore::new(handle).unwrap().key_secret(secret());
    let minute = set(&[("minute", Quota::per_minute(2))]);
    let subject = Subject::ip("192.0.2.1".parse().unwrap());
    a.check(&subject, &minute, 1).await.unwrap();
    b.check(&subject, &minute, 1).await.unwrap();
    assert_eq!(
        a.check(&subject, &minute, 1).await.unwrap().outcome,
        Outcome::Limited
    );
    let keys = server.command(&["KEYS", "*"]);
    let plain = HashTag::of(subject.as_bytes()).to_string();
    assert!(!keys.contains(&plain), "{keys}");
    assert_eq!(keys.lines().count(), 1, "one shared key: {keys}");
}
