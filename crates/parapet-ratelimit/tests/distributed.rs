//! Several limiter instances — separate layers, separate connections — on one Redis, 64
//! concurrent tasks on one key: the GCRA bound holds exactly, on standalone Redis and on a
//! 3-master cluster, and the limiter does not refuse what it should admit; sliding and
//! fixed windows admit exactly their count.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use parapet_core::RedisHandle;
use parapet_ratelimit::key::Global;
use parapet_ratelimit::{Quota, RateLimitLayer, RedisStore};
use parapet_testkit::{RedisCluster, RedisServer};

use common::{request_from, send, service};

const INSTANCES: usize = 4;
const TASKS: usize = 64;
const RATE: u32 = 50; // per second: T = 20 ms
const BURST: u32 = 20;
const RUN: Duration = Duration::from_millis(1500);

async fn redis_micros(handle: &RedisHandle) -> i64 {
    let (secs, micros): (i64, i64) = handle
        .query(&parapet_core::Command::new("TIME"))
        .await
        .unwrap();
    secs * 1_000_000 + micros
}

async fn hammer(handles: Vec<RedisHandle>, clock: RedisHandle) {
    let layers = layers(handles, Quota::per_second(RATE).burst(BURST));
    let admitted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let start = redis_micros(&clock).await;
    let began = Instant::now();
    let deadline = began + RUN;
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let mut svc = service(&layers[i % INSTANCES]);
        let (admitted, refused) = (admitted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            // When each request was sent and how long it took (µs since `began`).
            let mut timeline = Vec::new();
            while Instant::now() < deadline {
                let sent = began.elapsed();
                let response = send(&mut svc, request_from("192.0.2.1")).await;
                timeline.push((sent, began.elapsed() - sent));
                match response.status() {
                    StatusCode::OK => admitted.fetch_add(1, Ordering::Relaxed),
                    StatusCode::TOO_MANY_REQUESTS => refused.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected status {other}"),
                };
                tokio::task::yield_now().await;
            }
            timeline
        }));
    }
    let mut timeline = Vec::new();
    for task in tasks {
        timeline.extend(task.await.unwrap());
    }
    let elapsed = redis_micros(&clock).await - start;
    let admitted = admitted.load(Ordering::Relaxed) as i64;
    let interval = 1_000_000 / i64::from(RATE);
    let bound = i64::from(BURST) + elapsed / interval;
    assert!(
        admitted <= bound,
        "admitted {admitted} > bound {bound} over {elapsed} us"
    );
    // No false refusals. A cell freed at t goes to the first request after t, and the
    // bucket keeps up to BURST cells, so cells are lost only while no request was sent for
    // longer than BURST intervals (the client starved on a loaded machine), plus the last
    // round trip. The floor takes away exactly that, measured in this run.
    timeline.sort();
    let tolerance = Duration::from_micros((interval * i64::from(BURST)) as u64);
    let starved: Duration = timeline
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).saturating_sub(tolerance))
        .sum();
    let slowest = timeline
        .iter()
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default();
    let lost = (starved + slowest * 2).as_micros() as i64;
    let floor = i64::from(BURST) + (elapsed - lost) / interval - 1;
    assert!(
        admitted >= floor,
        "admitted {admitted} < {floor} over {elapsed} us (starved {starved:?}, slowest {slowest:?})"
    );
    assert!(refused.load(Ordering::Relaxed) > 0, "the key was hammered");
}

fn layers(handles: Vec<RedisHandle>, quota: Quota) -> Vec<RateLimitLayer> {
    handles
        .into_iter()
        .map(|h| {
            RateLimitLayer::builder()
                .policy("window", quota)
                .key(Global)
                .store(
                    RedisStore::new(h)
                        .unwrap()
                        .timeout(Duration::from_secs(2))
                        .unwrap(),
                )
                .build()
                .unwrap()
        })
        .collect()
}

/// 64 tasks over the instances hammer one key of a window far longer than the run: exactly
/// `WINDOW_COUNT` are admitted (never more: strict; never fewer: no false refusals).
async fn exactly_the_count(handles: Vec<RedisHandle>) {
    const WINDOW_COUNT: u32 = 37;
    for quota in [
        Quota::per_hour(WINDOW_COUNT).sliding_window(),
        // A day's window: the run crosses its edge with odds of 1 in 100,000.
        Quota::per_day(WINDOW_COUNT).fixed_window(),
    ] {
        let layers = layers(handles.clone(), quota);
        let admitted = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_millis(600);
        let mut tasks = Vec::new();
        for i in 0..TASKS {
            let mut svc = service(&layers[i % INSTANCES]);
            let admitted = admitted.clone();
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let response = send(&mut svc, request_from("192.0.2.1")).await;
                    match response.status() {
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
        assert_eq!(
            admitted.load(Ordering::Relaxed),
            u64::from(WINDOW_COUNT),
            "{:?}",
            quota.algorithm()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_exact_across_instances_on_standalone_redis() {
    let server = RedisServer::start();
    let mut handles = Vec::new();
    for _ in 0..INSTANCES {
        handles.push(
            RedisHandle::builder(server.url())
                .timeout(Duration::from_secs(2))
                .build()
                .await
                .unwrap(),
        );
    }
    exactly_the_count(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_exact_across_instances_on_a_cluster() {
    let cluster = RedisCluster::start();
    let mut handles = Vec::new();
    for _ in 0..INSTANCES {
        handles.push(
            RedisHandle::cluster(cluster.urls())
                .timeout(Duration::from_secs(2))
                .build()
                .await
                .unwrap(),
        );
    }
    exactly_the_count(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_across_instances_on_standalone_redis() {
    let server = RedisServer::start();
    let mut handles = Vec::new();
    for _ in 0..INSTANCES {
        handles.push(
            RedisHandle::builder(server.url())
                .timeout(Duration::from_secs(2))
                .build()
                .await
                .unwrap(),
        );
    }
    let clock = RedisHandle::builder(server.url()).build().await.unwrap();
    hammer(handles, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_across_instances_on_a_cluster() {
    let cluster = RedisCluster::start();
    let mut handles = Vec::new();
    for _ in 0..INSTANCES {
        handles.push(
            RedisHandle::cluster(cluster.urls())
                .timeout(Duration::from_secs(2))
                .build()
                .await
                .unwrap(),
        );
    }
    let clock = RedisHandle::builder(cluster.urls()[0].clone())
        .build()
        .await
        .unwrap();
    hammer(handles, clock).await;
}
