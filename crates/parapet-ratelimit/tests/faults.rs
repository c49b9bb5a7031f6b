//! Faults: Redis killed, frozen, restarted, its script cache flushed — under load. Every
//! request is answered within its deadline with the configured `OnStoreError` policy, and
//! the Redis path comes back by itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use http::StatusCode;
use parapet_core::{OnStoreError, RedisHandle};
use parapet_ratelimit::{Quota, RateLimitLayer, RedisStore};
use parapet_testkit::RedisServer;

use common::{request_from, send, send_together, service};

const DEADLINE: Duration = Duration::from_millis(50);
/// What a request may take beyond the store deadline on a loaded 2-core machine (debug
/// build, other tests or a build running). A request that waited on a dead or frozen Redis
/// without the deadline would hang for the kernel's TCP timeout (minutes) or for ever, so
/// this bound still tells the two apart.
const SLACK: Duration = Duration::from_millis(500);
/// How long a restarted Redis may take to decide again: reconnect back-off (at most 200 ms)
/// and one breaker pause (200 ms), with room for a loaded machine.
const RECOVERY: Duration = Duration::from_secs(2);

async fn layer(server: &RedisServer, on_error: OnStoreError, quota: Quota) -> RateLimitLayer {
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    RateLimitLayer::builder()
        .policy("policy", quota)
        .store(RedisStore::new(handle).unwrap().timeout(DEADLINE).unwrap())
        .on_store_error(on_error)
        .build()
        .unwrap()
}

/// Sends `n` requests from 8 concurrent tasks; returns each status and the slowest time.
async fn burst(layer: &RateLimitLayer, n: usize) -> (Vec<StatusCode>, Duration) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut svc = service(layer);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..n / 8 {
                let started = Instant::now();
                let response = send(
                    &mut svc,
                    request_from(&format!("192.0.2.{}", (t * 31 + i) % 250 + 1)),
                )
                .await;
                if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                    assert!(response.headers().contains_key("retry-after"));
                }
                out.push((response.status(), started.elapsed()));
            }
            out
        }));
    }
    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        for (status, took) in task.await.unwrap() {
            statuses.push(status);
            slowest = slowest.max(took);
        }
    }
    (statuses, slowest)
}

/// Waits until a burst of 16 requests is all admitted *by Redis*: 16 OKs, and 16 charges
/// written by the script (its `SET` calls; decisions that arrive together share a script
/// call, so calls are fewer).
async fn until_redis_decides(
    layer: &RateLimitLayer,
    server: &RedisServer,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let before = server.command_calls("set");
        let (statuses, _) = burst(layer, 16).await;
        let charges = server.command_calls("set") - before;
        if charges >= 16 && statuses.iter().all(|s| *s == StatusCode::OK) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "Redis not deciding again within {within:?}: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_then_restarted_under_each_policy() {
    for (policy, during) in [
        (OnStoreError::FailOpen, StatusCode::OK),
        (OnStoreError::FailClosed, StatusCode::SERVICE_UNAVAILABLE),
        (OnStoreError::Fallback, StatusCode::OK),
    ] {
        let mut server = RedisServer::start();
        let layer = layer(&server, policy, Quota::per_second(10_000)).await;
        let (statuses, _) = burst(&layer, 64).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{policy:?} healthy: {statuses:?}"
        );

        server.kill();
        let (statuses, slowest) = burst(&layer, 128).await;
        assert!(
            statuses.iter().all(|s| *s == during),
            "{policy:?} down: {statuses:?}"
        );
        assert!(
            slowest < DEADLINE + SLACK,
            "{policy:?}: a request took {slowest:?}"
        );

        server.restart();
        let took = until_redis_decides(&layer, &server, RECOVERY).await;
        assert!(took < RECOVERY, "{policy:?}: recovery took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_at_most_the_deadline() {
    let server = RedisServer::start();
    let layer = layer(&server, OnStoreError::FailClosed, Quota::per_second(10_000)).await;
    burst(&layer, 16).await;
    server.pause();
    let (statuses, slowest) = burst(&layer, 64).await;
    server.resume();
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    assert!(slowest < DEADLINE + SLACK, "a request took {slowest:?}");
    until_redis_decides(&layer, &server, RECOVERY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_limiter_still_limits() {
    let mut server = RedisServer::start();
    let layer = layer(&server, OnStoreError::Fallback, Quota::per_minute(3)).await;
    server.kill();
    let mut svc = service(&layer);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(&mut svc, request_from("192.0.2.1")).await.status());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429].map(|s| StatusCode::from_u16(s).unwrap())
    );
}

/// What the fallback refused while Redis was away is not remembered as Redis's refusal: once
/// Redis is back, it decides again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_refusals_are_not_cached_as_redis_refusals() {
    let mut server = RedisServer::start();
    let layer = layer(&server, OnStoreError::Fallback, Quota::per_minute(1)).await;
    let mut svc = service(&layer);
    server.kill();
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    server.restart();
    // Past the breaker's pause, the empty Redis admits this client again.
    let started = Instant::now();
    loop {
        let before = server.command_calls("evalsha");
        let status = send(&mut svc, request_from("192.0.2.1")).await.status();
        if server.command_calls("evalsha") > before {
            assert_eq!(status, StatusCode::OK, "Redis has no state for this client");
            break;
        }
        assert!(started.elapsed() < RECOVERY, "Redis was not asked again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_under_load_reaches_no_client() {
    let server = RedisServer::start();
    // Fail closed: any store error would show as a 503.
    let layer = layer(
        &server,
        OnStoreError::FailClosed,
        Quota::per_second(100_000),
    )
    .await;
    for _ in 0..5 {
        let flusher = {
            let port = server.port();
            tokio::task::spawn_blocking(move || {
                for _ in 0..5 {
                    std::thread::sleep(Duration::from_millis(3));
                    assert_eq!(parapet_testkit::command(port, &["SCRIPT", "FLUSH"]), "+OK");
                }
            })
        };
        let (statuses, _) = burst(&layer, 256).await;
        flusher.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
    }
    assert_eq!(server.command_calls("script|flush"), 25);
}

/// Redis at `maxmemory` with `noeviction` refuses the scripts' writes. The default policy,
/// a local fallback limiter, keeps limiting: 2 of 20 admitted against `per_minute(2)`, not
/// 20 of 20 as failing open would.
#[tokio::test]
async fn a_full_redis_still_limits_by_default() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(2))
        .store(RedisStore::new(handle).unwrap())
        .build()
        .unwrap();
    server.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.command(&["CONFIG", "SET", "maxmemory", "1"]);
    let mut svc = service(&layer);
    let mut admitted = 0;
    for _ in 0..20 {
        if send(&mut svc, request_from("192.0.2.1")).await.status() == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 2);
    let state = layer
        .limiter()
        .check(
            &parapet_ratelimit::Subject::ip("192.0.2.1".parse().unwrap()),
            &common::set(&[("minute", Quota::per_minute(2))]),
            1,
        )
        .await;
    // The limiter API returns the store's error as is: out of memory, with its cause.
    // (A read-only check still works: Redis refuses only the write.)
    let err = state.unwrap_err().to_string();
    assert!(
        err.contains("out of memory") && err.contains("OOM"),
        "{err}"
    );
}

#[tokio::test]
async fn a_store_deadline_above_the_handles_is_an_error() {
    let handle = RedisHandle::builder("redis://127.0.0.1:1")
        .timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let err = RedisStore::new(handle)
        .unwrap()
        .timeout(Duration::from_millis(200))
        .unwrap_err();
    assert!(
        err.to_string().contains("at most the Redis handle's 100ms"),
        "{err}"
    );
}

/// Slowing Redis does not lift a ban: the fallback limiter learned it from Redis's answer,
/// and refuses the banned client while Redis is frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_lifts_no_ban() {
    let server = RedisServer::start();
    let a = layer(&server, OnStoreError::Fallback, Quota::per_second(10_000)).await;
    let b = layer(&server, OnStoreError::Fallback, Quota::per_second(10_000)).await;
    let banned = parapet_ratelimit::Subject::ip("192.0.2.1".parse().unwrap());
    a.limiter()
        .ban(&banned, Duration::from_secs(3600))
        .await
        .unwrap();
    let mut svc = service(&b);
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "Redis says banned"
    );
    server.pause();
    for _ in 0..20 {
        let response = send(&mut svc, request_from("192.0.2.1")).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 3500, "still the ban, Retry-After {retry}");
    }
    // Others are decided by the fallback's quota meanwhile.
    assert_eq!(
        send(&mut svc, request_from("192.0.2.2")).await.status(),
        StatusCode::OK
    );
    server.resume();
}

/// One failed call counts once toward the circuit breaker, however many decisions it
/// carried: a batch of six that misses its deadline leaves the breaker closed (it opens
/// after 3 failed calls in a row), so the next request is decided by Redis again.
// One thread: the six requests are queued before the batcher runs, so they make one call.
#[tokio::test]
async fn a_failed_batch_counts_once_toward_the_breaker() {
    let server = RedisServer::start();
    let layer = layer(&server, OnStoreError::FailClosed, Quota::per_second(10_000)).await;
    let mut svc = service(&layer);
    let warm = send(&mut svc, request_from("192.0.2.1")).await;
    assert_eq!(warm.status(), StatusCode::OK);
    let calls = server.command_calls("evalsha");

    server.pause();
    let statuses = send_together(&layer, 6).await;
    server.resume();
    for response in statuses {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    let next = send(&mut svc, request_from("192.0.2.20")).await;
    assert_eq!(next.status(), StatusCode::OK, "the breaker opened");
    // The late batch, then this request: two calls.
    assert_eq!(server.command_calls("evalsha") - calls, 2);
}
