//! One suite, every store: the in-process store, Redis standalone and Redis Cluster must
//! behave the same for the operations of `RateLimitStore`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use parapet_core::{ManualClock, RedisHandle};
use parapet_ratelimit::{MemoryStore, Outcome, Quota, RateLimitStore, RedisStore, Subject};
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
    let minute = set(&[("minute", Quota::per_minute(100))]);
    for i in 0..100 {
        assert_eq!(
            store.check(&subject, &minute, 1).await.unwrap().outcome,
            Outcome::Allowed,
            "request {i}"
        );
    }
    let d = store.check(&subject, &minute, 1).await.unwrap();
    assert_eq!(d.outcome, Outcome::Limited);
    let retry = d.retry_after.unwrap();
    assert!(
        retry > Duration::from_millis(550) && retry <= Duration::from_millis(600),
        "{retry:?}"
    );
    assert_every_key_has_a_ttl(&server);
    // Keys name the subject by hash only.
    let keys = server.command(&["KEYS", "*"]);
    assert!(!keys.contains("server-time"), "{keys}");
    assert!(keys.starts_with("parapet:rl:{"), "{keys}");
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
