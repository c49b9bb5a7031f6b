//! The Redis store's promises: one round trip per hit, a TTL on every key, responses shared
//! by instances, and no client error however Redis fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Origin, cache, fetch, get, send};
use parapet_cache::{CacheLayer, RedisStore};
use parapet_core::{KeyPrefix, RedisHandle};
use parapet_testkit::RedisServer;

#[tokio::test]
async fn a_hit_is_one_round_trip_and_every_key_has_a_ttl() {
    let server = RedisServer::start();
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "x");
    let store = RedisStore::new(
        RedisHandle::builder(server.url().as_str())
            .build()
            .await
            .unwrap(),
    )
    .unwrap();
    let (svc, _, _) = common::cache_with_store(&origin, store).await;
    fetch(&svc, "http://a.example/").await;
    let before = total_calls(&server);
    for _ in 0..10 {
        assert!(fetch(&svc, "http://a.example/").await.is_hit());
    }
    assert_eq!(total_calls(&server) - before, 10, "one command per hit");
    // The miss looked twice: before and after it took the lead (see `flow::miss`).
    assert_eq!(server.command_calls("hmget"), 10 + 2);

    // A resource with Vary costs a second read only the first time an instance sees it.
    origin.answer(
        200,
        &[
            ("cache-control", "public, max-age=60"),
            ("vary", "accept-language"),
        ],
        "x",
    );
    let lang = || get("http://a.example/v").header("accept-language", "en");
    send(&svc, lang()).await;
    let other = RedisStore::new(
        RedisHandle::builder(server.url().as_str())
            .build()
            .await
            .unwrap(),
    )
    .unwrap();
    let (instance_b, _, _) = common::cache_with_store(&origin, other).await;
    // The new instance reads the purge records (and Redis's clock) in a task of its own.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = total_calls(&server);
    assert!(send(&instance_b, lang()).await.is_hit());
    assert_eq!(
        total_calls(&server) - before,
        2,
        "first sight: HMGET + HGET"
    );
    // After: one EVALSHA, which reads the variant and counts the use (its HMGET and
    // HINCRBY run inside the script, in the same round trip).
    let (evalsha, hget) = (
        server.command_calls("evalsha"),
        server.command_calls("hget"),
    );
    assert!(send(&instance_b, lang()).await.is_hit());
    assert_eq!(server.command_calls("evalsha") - evalsha, 1);
    assert_eq!(server.command_calls("hget"), hget);

    let keys = server.command(&["KEYS", "*"]);
    let keys: Vec<&str> = keys
        .lines()
        .filter(|k| k.starts_with("parapet:cache:"))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in keys {
        let ttl: i64 = server
            .command(&["PTTL", key])
            .trim_start_matches(':')
            .parse()
            .unwrap();
        assert!(ttl > 0 && ttl <= 60_000 + 60_000, "{key}: {ttl}");
    }
}

/// Commands a request can run (reads and the store script); the fan-out's own commands
/// (SUBSCRIBE, PING, HGETALL of purge records) run on their own connection and schedule.
fn total_calls(server: &RedisServer) -> u64 {
    ["hmget", "hget", "evalsha", "eval", "del"]
        .iter()
        .map(|name| server.command_calls(name))
        .sum()
}

#[tokio::test]
async fn instances_share_responses_and_invalidations() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "shared");
    let (a, _, _) = cache(Backend::Redis, &origin, |b| b).await;
    let prefix = KeyPrefix::new("shared").unwrap();
    let store = || shared_store(&prefix);
    let (one, _, _) = common::cache_with_store(&origin, store().await).await;
    let (two, _, _) = common::cache_with_store(&origin, store().await).await;
    drop(a);
    fetch(&one, "http://a.example/p").await;
    assert!(
        fetch(&two, "http://a.example/p").await.is_hit(),
        "stored by one, served by two"
    );
    send(&two, http::Request::delete("http://a.example/p")).await;
    assert!(
        !fetch(&one, "http://a.example/p").await.is_hit(),
        "invalidated by two, for one too"
    );
    assert_eq!(origin.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_four_instances_make_at_most_one_call_each() {
    let origin = four_instances_one_cold_key("stampede", false).await;
    assert!(origin.calls() <= 4, "{} origin calls", origin.calls());
}

/// Four instances on the shared Redis under `prefix` (with the fetch lease or not), and
/// 2,000 concurrent requests for one cold key spread over them; the origin they hit.
async fn four_instances_one_cold_key(prefix: &str, lease: bool) -> Origin {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "cold");
    origin.slow(Duration::from_millis(300));
    let prefix = KeyPrefix::new(prefix).unwrap();
    let mut instances = Vec::new();
    for _ in 0..4 {
        // Long deadlines: a loaded test machine must not trip the documented slow-store
        // fallbacks (a timeout is a miss, a slow store grants the lease); these tests are
        // about collapsing.
        let mut builder = CacheLayer::builder()
            .store(patient_store(&prefix).await)
            .store_timeout(Duration::from_secs(2));
        if lease {
            builder = builder.distributed_lease(Duration::from_secs(2));
        }
        instances.push(common::cache_over(&origin, builder.build().unwrap()).0);
    }
    let tasks: Vec<_> = (0..2_000)
        .map(|i| {
            let svc = instances[i % 4].clone();
            tokio::spawn(async move { fetch(&svc, "http://a.example/cold").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().body, "cold");
    }
    origin
}

#[tokio::test]
async fn redis_down_slow_or_restarted_never_reaches_the_client() {
    let mut server = RedisServer::start();
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "x");
    let handle = RedisHandle::builder(server.url().as_str())
        .build()
        .await
        .unwrap();
    let layer = CacheLayer::builder()
        .store(RedisStore::new(handle).unwrap())
        .store_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let (svc, _) = common::cache_over(&origin, layer);
    fetch(&svc, "http://a.example/").await;
    assert!(fetch(&svc, "http://a.example/").await.is_hit());

    server.pause();
    for _ in 0..5 {
        let started = Instant::now();
        let got = fetch(&svc, "http://a.example/").await;
        assert_eq!(
            (got.status, &got.body[..]),
            (200, &b"x"[..]),
            "from the origin"
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    server.resume();

    server.kill();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(fetch(&svc, "http://a.example/").await.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    server.restart();
    // It recovers by itself: the breaker lets a probe through, the connection comes back,
    // the response is stored again and served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if fetch(&svc, "http://a.example/").await.is_hit() {
            break;
        }
        assert!(Instant::now() < deadline, "no hit after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `cond` every 20 ms for up to `limit`.
/// A store on the shared Redis under `prefix`, on a connection of its own.
async fn shared_store(prefix: &KeyPrefix) -> RedisStore {
    let handle = RedisHandle::builder(RedisServer::shared().url().as_str())
        .build()
        .await
        .unwrap();
    RedisStore::new(handle).unwrap().prefix(prefix.clone())
}

/// Whether `uri` stops being a hit on `svc` within a second (a purge heard).
async fn purged(svc: &common::Svc, uri: &str) -> bool {
    eventually(Duration::from_secs(1), async || {
        !fetch(svc, uri).await.is_hit()
    })
    .await
}

async fn eventually(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn two_tiers_serve_from_memory_and_hear_every_removal() {
    use parapet_cache::{MemoryStore, TieredStore};
    let mut server = RedisServer::start();
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "x");
    let tiered = || async {
        let handle = RedisHandle::builder(server.url().as_str())
            .build()
            .await
            .unwrap();
        TieredStore::new(MemoryStore::new(1 << 20), RedisStore::new(handle).unwrap())
    };
    let (store_a, store_b) = (tiered().await, tiered().await);
    let (a, _) = common::cache_over(
        &origin,
        CacheLayer::builder()
            .store(store_a.clone())
            .build()
            .unwrap(),
    );
    let (b, _) = common::cache_over(
        &origin,
        CacheLayer::builder()
            .store(store_b.clone())
            .build()
            .unwrap(),
    );
    assert!(
        eventually(Duration::from_secs(3), async || store_a.is_in_sync()
            && store_b.is_in_sync())
        .await
    );

    fetch(&a, "http://a.example/p").await;
    assert!(
        fetch(&b, "http://a.example/p").await.is_hit(),
        "from Redis, then kept in B's memory"
    );
    let before = total_calls(&server);
    for _ in 0..5 {
        assert!(fetch(&b, "http://a.example/p").await.is_hit());
    }
    assert_eq!(
        total_calls(&server) - before,
        0,
        "memory hits cost no round trip"
    );

    // A new response stored by A replaces B's memory copy too. (Before: B kept serving
    // the old one from memory until it expired.)
    origin.answer(200, &[("cache-control", "public, max-age=60")], "y");
    let refreshed = send(
        &a,
        get("http://a.example/p").header("cache-control", "no-cache"),
    )
    .await;
    assert_eq!(refreshed.body, "y");
    assert!(
        eventually(Duration::from_secs(2), async || {
            let got = fetch(&b, "http://a.example/p").await;
            got.is_hit() && got.body == "y"
        })
        .await,
        "B serves what A stored"
    );

    // A's DELETE removes the Redis entry and B's memory copy.
    send(&a, http::Request::delete("http://a.example/p")).await;
    assert!(
        eventually(Duration::from_secs(1), async || store_b.memory().bytes()
            == 0)
        .await
    );
    assert!(!fetch(&b, "http://a.example/p").await.is_hit());

    // While Redis is away the memory tier is not trusted; requests still succeed.
    server.kill();
    assert!(eventually(Duration::from_secs(2), async || !store_b.is_in_sync()).await);
    for _ in 0..3 {
        assert_eq!(fetch(&b, "http://a.example/p").await.status, 200);
    }
    server.restart();
    assert!(
        eventually(Duration::from_secs(10), async || store_b.is_in_sync()).await,
        "resubscribed"
    );
    assert_eq!(store_b.memory().bytes(), 0, "emptied on resync");
    assert!(
        eventually(Duration::from_secs(5), async || {
            fetch(&b, "http://a.example/p").await;
            fetch(&b, "http://a.example/p").await.is_hit()
        })
        .await
    );
}

#[tokio::test]
async fn purges_reach_every_instance_and_late_joiners() {
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "public, max-age=600"),
            ("cache-tag", "shelf"),
        ],
        "x",
    );
    let prefix = KeyPrefix::new("purges").unwrap();
    let store = || shared_store(&prefix);
    let (a, layer_a) = common::cache_over(
        &origin,
        CacheLayer::builder().store(store().await).build().unwrap(),
    );
    let (b, _) = common::cache_over(
        &origin,
        CacheLayer::builder().store(store().await).build().unwrap(),
    );
    for path in ["/products/1", "/other"] {
        fetch(&b, &format!("http://a.example{path}")).await;
    }
    // Let B's subscription come up before A announces.
    tokio::time::sleep(Duration::from_millis(300)).await;
    layer_a.handle().purge_prefix("/products").await.unwrap();
    assert!(
        purged(&b, "http://a.example/products/1").await,
        "B heard the purge"
    );
    assert!(fetch(&b, "http://a.example/other").await.is_hit());
    let _ = a;

    tokio::time::sleep(Duration::from_millis(10)).await;
    layer_a.handle().purge_tag("shelf").await.unwrap();
    // An instance that starts after the purge reads it back from Redis.
    let (c, _) = common::cache_over(
        &origin,
        CacheLayer::builder().store(store().await).build().unwrap(),
    );
    assert!(
        eventually(Duration::from_secs(2), async || !fetch(
            &c,
            "http://a.example/other"
        )
        .await
        .is_hit())
        .await,
        "C read the tag purge at start"
    );
}

/// A purge is dated by Redis's clock, not the purging instance's: an instance whose clock
/// runs an hour ahead does not make the others purge what they store after it. (Before:
/// every response stored on B in the next hour was purged on arrival.)
#[tokio::test]
async fn a_purge_is_dated_by_redis_not_by_the_purging_clock() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=600")], "x");
    let prefix = KeyPrefix::new("skew").unwrap();
    let store = || shared_store(&prefix);
    let ahead = parapet_core::ManualClock::new();
    let (_, layer_a) = common::cache_over(
        &origin,
        CacheLayer::builder()
            .clock(ahead.clone())
            .store(store().await)
            .build()
            .unwrap(),
    );
    // A's clock is read from its build on: an hour ahead of B's from now.
    ahead.advance(Duration::from_secs(3600));
    let (b, _) = common::cache_over(
        &origin,
        CacheLayer::builder().store(store().await).build().unwrap(),
    );
    fetch(&b, "http://a.example/p/1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    layer_a.handle().purge_prefix("/p").await.unwrap();
    assert!(
        purged(&b, "http://a.example/p/1").await,
        "B heard the purge"
    );
    // Stored again after the purge: kept.
    tokio::time::sleep(Duration::from_millis(10)).await;
    fetch(&b, "http://a.example/p/2").await;
    assert!(fetch(&b, "http://a.example/p/2").await.is_hit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_lease_four_instances_make_at_most_two_calls() {
    let origin = four_instances_one_cold_key("leased", true).await;
    assert!(origin.calls() <= 2, "{} origin calls", origin.calls());
    // The lease was given back when its holder's fetch ended (the pattern matches the
    // per-variant lease keys, `…:lease-<digest>`).
    let leases = RedisServer::shared().command(&["KEYS", "leased:cache:*:lease-*"]);
    assert!(leases.lines().all(|l| !l.contains(":lease-")), "{leases}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_redis_faults_cost_no_client_error() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let server = RedisServer::start();
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "x");
    let handle = RedisHandle::builder(server.url().as_str())
        .build()
        .await
        .unwrap();
    let layer = CacheLayer::builder()
        .store(RedisStore::new(handle).unwrap())
        .store_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let (svc, _) = common::cache_over(&origin, layer);
    let stop = Arc::new(AtomicBool::new(false));
    let (served, errors, slowest) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let (svc, stop, served, errors, slowest) = (
                svc.clone(),
                Arc::clone(&stop),
                Arc::clone(&served),
                Arc::clone(&errors),
                Arc::clone(&slowest),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // A request through the cache may complete without waiting on anything
                    // (the breaker open, the origin instant); a real client's next request
                    // comes through a socket. Yield, or eight such loops starve the timers.
                    tokio::task::yield_now().await;
                    let started = Instant::now();
                    let got = fetch(&svc, &format!("http://a.example/{}", i % 3)).await;
                    let micros = u64::try_from(started.elapsed().as_micros()).unwrap();
                    slowest.fetch_max(micros, Ordering::Relaxed);
                    if got.status == 200 && got.body == "x" {
                        served.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The test kit's calls block (they wait for the port): off the runtime's threads.
    let server = std::sync::Arc::new(std::sync::Mutex::new(server));
    let ctl = |f: fn(&mut RedisServer)| {
        let server = std::sync::Arc::clone(&server);
        tokio::task::spawn_blocking(move || f(&mut server.lock().unwrap()))
    };
    // Frozen for 2 s: a request that waited on Redis without its deadlines would take that.
    ctl(|s| s.pause()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctl(|s| s.resume()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    ctl(|s| s.kill()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctl(|s| s.restart()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    assert!(served.load(Ordering::Relaxed) > 100);
    // Each request waits at most one store deadline for the lookup and one for the store
    // (100 ms), plus what a loaded 2-core machine adds to a debug build (1 s of slack): a
    // request without the deadlines would hang for the whole 2 s pause.
    let slowest = Duration::from_micros(slowest.load(Ordering::Relaxed));
    assert!(
        slowest < Duration::from_millis(100) + Duration::from_secs(1),
        "slowest request: {slowest:?}"
    );
    // Recovered: hits again.
    assert!(
        eventually(Duration::from_secs(5), async || fetch(
            &svc,
            "http://a.example/0"
        )
        .await
        .is_hit())
        .await
    );
}

/// A store on the shared server under `prefix`, with 2 s deadlines.
async fn patient_store(prefix: &KeyPrefix) -> RedisStore {
    let handle = RedisHandle::builder(RedisServer::shared().url().as_str())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    RedisStore::new(handle)
        .unwrap()
        .timeout(Duration::from_secs(2))
        .unwrap()
        .prefix(prefix.clone())
}

#[tokio::test]
async fn every_layer_on_one_store_hears_purges() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=600")], "x");
    let prefix = KeyPrefix::new("feeds").unwrap();
    let shared = patient_store(&prefix).await;
    let (one, _) = common::cache_over(
        &origin,
        CacheLayer::builder().store(shared.clone()).build().unwrap(),
    );
    let (two, _) = common::cache_over(
        &origin,
        CacheLayer::builder().store(shared).build().unwrap(),
    );
    let (_, purger) = common::cache_over(
        &origin,
        CacheLayer::builder()
            .store(patient_store(&prefix).await)
            .build()
            .unwrap(),
    );
    fetch(&one, "http://a.example/a").await;
    fetch(&two, "http://a.example/b").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    purger.handle().purge_prefix("/").await.unwrap();
    for (svc, path) in [(&one, "/a"), (&two, "/b")] {
        assert!(
            purged(svc, &format!("http://a.example{path}")).await,
            "{path}"
        );
    }
}
