//! The approximate mode for hot keys (`HotKeyStore`): four instances leasing from one
//! Redis never admit more than the documented bound `B + r·(t + Δ)`, nor far fewer than
//! the rate; decisions make no round trip once a key is leased; bans arrive within a
//! settlement.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use parapet_core::RedisHandle;
use parapet_ratelimit::key::Global;
use parapet_ratelimit::{HotKeyStore, Quota, RateLimitLayer, RateLimitStore, RedisStore, Subject};
use parapet_testkit::RedisServer;

use common::{request_from, send, service};

const RATE: u32 = 200; // per second
const BURST: u32 = 20;
const SETTLE: Duration = Duration::from_millis(50);

async fn redis_micros(handle: &RedisHandle) -> i64 {
    let (secs, micros): (i64, i64) = handle
        .query(&parapet_core::Command::new("TIME"))
        .await
        .unwrap();
    secs * 1_000_000 + micros
}

async fn hot_layer(server: &RedisServer, quota: Quota) -> RateLimitLayer {
    let handle = RedisHandle::builder(server.url())
        .timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let redis = RedisStore::new(handle)
        .unwrap()
        .timeout(Duration::from_secs(1))
        .unwrap();
    RateLimitLayer::builder()
        .policy("fleet", quota)
        .key(Global)
        .store(HotKeyStore::new(redis, SETTLE).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_stay_within_the_bound() {
    const INSTANCES: usize = 4;
    const TASKS: usize = 32;
    let server = RedisServer::start();
    let clock = RedisHandle::builder(server.url()).build().await.unwrap();
    let mut layers = Vec::new();
    for _ in 0..INSTANCES {
        layers.push(hot_layer(&server, Quota::per_second(RATE).burst(BURST)).await);
    }
    let admitted = Arc::new(AtomicU64::new(0));
    let start = redis_micros(&clock).await;
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let mut svc = service(&layers[i % INSTANCES]);
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match send(&mut svc, request_from("192.0.2.1")).await.status() {
                    StatusCode::OK => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    StatusCode::TOO_MANY_REQUESTS => {}
                    other => panic!("unexpected status {other}"),
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = redis_micros(&clock).await - start;
    let admitted = admitted.load(Ordering::Relaxed) as i64;
    let settle = SETTLE.as_micros() as i64;
    // The documented bound: B + r·(t + Δ).
    let bound = i64::from(BURST) + i64::from(RATE) * (elapsed + settle) / 1_000_000;
    let exact = i64::from(BURST) + i64::from(RATE) * elapsed / 1_000_000;
    eprintln!("admitted {admitted}, exact limit {exact}, bound {bound}, over {elapsed} us");
    assert!(
        admitted <= bound,
        "admitted {admitted} > {bound} over {elapsed} us"
    );
    // And not far below the rate: leases lost to other instances cost at most one lease
    // per instance and settlement; half the rate is a floor a loaded machine still meets.
    let floor = i64::from(RATE) * elapsed / 1_000_000 / 2;
    assert!(
        admitted >= floor,
        "admitted {admitted} < {floor} over {elapsed} us"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_key_costs_no_round_trip_per_request() {
    let server = RedisServer::start();
    let layer = hot_layer(&server, Quota::per_second(1_000_000)).await;
    let mut svc = service(&layer);
    // The first requests are decided by Redis and register the key; from the next
    // settlement on it holds leases sized to the demand, here a steady loop's.
    let warm = Instant::now() + SETTLE * 10;
    while Instant::now() < warm {
        send(&mut svc, request_from("192.0.2.1")).await;
    }
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    let began = Instant::now();
    let mut admitted = 0;
    for _ in 0..2_000 {
        if send(&mut svc, request_from("192.0.2.1")).await.status() == StatusCode::OK {
            admitted += 1;
        }
    }
    // Leases are renewed twice per SETTLE.
    let settlements = 2 * began.elapsed().as_millis() as u64 / SETTLE.as_millis() as u64 + 2;
    let calls = server.command_calls("evalsha") + server.command_calls("eval") - before;
    // A renewal makes at most three script calls (give back, lease, lease what is free);
    // requests make none while leased.
    assert!(
        calls <= 3 * settlements + 20,
        "{calls} script calls for 2,000 requests over {settlements} settlements"
    );
    assert!(calls < 200, "{calls} script calls for 2,000 requests");
    assert_eq!(admitted, 2_000, "a quota far from spent refuses nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_reaches_a_leased_key_within_a_settlement() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let layer = hot_layer(&server, Quota::per_second(RATE).burst(BURST)).await;
    let mut svc = service(&layer);
    send(&mut svc, request_from("192.0.2.1")).await;
    tokio::time::sleep(SETTLE * 3).await;
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::OK
    );
    RedisStore::new(handle)
        .unwrap()
        .ban(&Subject::new("global", ""), Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(SETTLE * 3).await;
    let refused = send(&mut svc, request_from("192.0.2.1")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A client spreading requests thinly over many keys gets no leases: every request costs
/// at most one store call, never more (renewing leases for each key would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thin_keys_cost_no_more_calls_than_requests() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let layer = RateLimitLayer::builder()
        .policy("client", Quota::per_second(1_000))
        .store(HotKeyStore::new(RedisStore::new(handle).unwrap(), SETTLE).unwrap())
        .build()
        .unwrap();
    let mut svc = service(&layer);
    tokio::time::sleep(SETTLE).await;
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    let mut requests = 0;
    for _ in 0..20 {
        for ip in 0..100 {
            let response = send(&mut svc, request_from(&format!("192.0.2.{ip}"))).await;
            assert_eq!(response.status(), StatusCode::OK);
            requests += 1;
        }
        tokio::time::sleep(SETTLE / 2).await;
    }
    let calls = server.command_calls("evalsha") + server.command_calls("eval") - before;
    assert!(
        calls <= requests,
        "{calls} script calls for {requests} requests"
    );
}

#[tokio::test]
async fn settle_intervals_out_of_range_are_refused() {
    let server = RedisServer::shared();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    for every in [Duration::ZERO, Duration::from_secs(11)] {
        let redis = RedisStore::new(handle.clone()).unwrap();
        assert!(HotKeyStore::new(redis, every).is_err(), "{every:?}");
    }
}
