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

use common::{request_from, send, service};

const DEADLINE: Duration = Duration::from_millis(50);
/// What a request may take beyond the store deadline on this noisy 2-core machine (debug
/// build, other tests running).
const SLACK: Duration = Duration::from_millis(250);

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

/// Waits until a burst of 16 requests is all admitted *by Redis*: 16 script calls, 16 OKs.
async fn until_redis_decides(
    layer: &RateLimitLayer,
    server: &RedisServer,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let before = server.command_calls("evalsha");
        let (statuses, _) = burst(layer, 16).await;
        let calls = server.command_calls("evalsha") - before;
        if calls >= 16 && statuses.iter().all(|s| *s == StatusCode::OK) {
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
        let took = until_redis_decides(&layer, &server, Duration::from_secs(1)).await;
        assert!(
            took < Duration::from_secs(1),
            "{policy:?}: recovery took {took:?}"
        );
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
    until_redis_decides(&layer, &server, Duration::from_secs(1)).await;
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
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "Redis was not asked again"
        );
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
