//! Round trips, counted by Redis itself (`INFO commandstats`): one script call per decision
//! the local deny cache does not answer, whatever the number of policies, and none for
//! those it answers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use http::StatusCode;
use parapet_core::RedisHandle;
use parapet_ratelimit::{Quota, RateLimitLayer, RedisStore};
use parapet_testkit::RedisServer;

use common::{in_sync, request_from, send, service};

async fn layer(server: &RedisServer, deny_cache: usize) -> RateLimitLayer {
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    RateLimitLayer::builder()
        .policy("second", Quota::per_second(5))
        .policy("minute", Quota::per_minute(100))
        .policy("hour", Quota::per_hour(1000))
        .store(RedisStore::new(handle).unwrap())
        .headers(parapet_ratelimit::HeaderStyle::Ietf)
        .deny_cache(deny_cache)
        .build()
        .unwrap()
}

#[tokio::test]
async fn one_evalsha_per_decision_and_none_for_cached_refusals() {
    let server = RedisServer::start();
    let layer = layer(&server, 10_000).await;
    let mut svc = service(&layer);
    // Warm up: the first call loads the script and starts the change subscription, without
    // which the deny cache is not trusted.
    send(&mut svc, request_from("198.51.100.1")).await;
    in_sync(&layer).await;
    let evalsha = server.command_calls("evalsha");
    let eval = server.command_calls("eval");

    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(send(&mut svc, request_from("192.0.2.1")).await.status());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 5);
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        20
    );
    // 5 admitted + 1 refused by Redis; the 19 refusals after it were answered locally.
    assert_eq!(server.command_calls("evalsha") - evalsha, 6);
    assert_eq!(server.command_calls("eval"), eval, "no EVAL after warm-up");
}

#[tokio::test]
async fn without_deny_cache_every_decision_is_one_evalsha() {
    let server = RedisServer::start();
    let mut svc = service(&layer(&server, 0).await);
    send(&mut svc, request_from("198.51.100.1")).await;
    let evalsha = server.command_calls("evalsha");
    for _ in 0..25 {
        send(&mut svc, request_from("192.0.2.1")).await;
    }
    assert_eq!(server.command_calls("evalsha") - evalsha, 25);
}

#[tokio::test]
async fn script_flush_costs_one_reload_and_no_error() {
    let server = RedisServer::start();
    let mut svc = service(&layer(&server, 0).await);
    send(&mut svc, request_from("198.51.100.1")).await;
    server.command(&["SCRIPT", "FLUSH"]);
    let response = send(&mut svc, request_from("192.0.2.1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["ratelimit"],
        "\"second\";r=4;t=1, \"minute\";r=99;t=1, \"hour\";r=999;t=4"
    );
    let evalsha = server.command_calls("evalsha");
    send(&mut svc, request_from("192.0.2.1")).await;
    assert_eq!(
        server.command_calls("evalsha") - evalsha,
        1,
        "back to one call per decision"
    );
}

/// A refund costs one more script call, only for the responses it applies to, and is made
/// after the response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_cost_one_call_only_when_they_apply() {
    use tower::Layer;

    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(3))
        .store(RedisStore::new(handle).unwrap())
        .refund_when(|status| status == StatusCode::UNAUTHORIZED)
        .build()
        .unwrap();
    let mut svc = layer.layer(common::StatusOn {
        path: "/denied",
        status: StatusCode::UNAUTHORIZED,
    });
    let mut get = async |path| common::status_of(&mut svc, path).await;
    // Warm-up: one charge that stays, and one refunded (which loads the refund script).
    get("/warm-up").await;
    get("/denied").await;
    let subject = parapet_ratelimit::Subject::ip("192.0.2.1".parse().unwrap());
    let minute = common::set(&[("minute", Quota::per_minute(3))]);
    let started = std::time::Instant::now();
    while layer
        .limiter()
        .state(&subject, &minute)
        .await
        .unwrap()
        .states[0]
        .remaining
        != 2
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "warm-up refund"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    for i in 1..=5 {
        assert_eq!(
            get("/denied").await,
            StatusCode::UNAUTHORIZED,
            "request {i}"
        );
        // One decision and one refund each, the refund in the background after the
        // response: wait for it before the next request.
        let started = std::time::Instant::now();
        while server.command_calls("evalsha") + server.command_calls("eval") - before < 2 * i {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "refund {i} not made"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    // The warm-up counted; the refunded ones did not: two left, then refused.
    assert_eq!(get("/ok").await, StatusCode::OK);
    assert_eq!(get("/ok").await, StatusCode::OK);
    assert_eq!(get("/ok").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        server.command_calls("evalsha") + server.command_calls("eval") - before,
        // 5 decisions + 5 refunds + 3 decisions (the state reads above came before).
        13,
        "no refund call for the responses it does not apply to"
    );
}

/// `failed_calls` of `EVALSHA` on one node, from `INFO commandstats`.
fn failed_evalsha(info: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:"))
        .and_then(|stats| {
            stats
                .split(',')
                .find_map(|field| field.strip_prefix("failed_calls="))
        })
        .map_or(0, |n| n.parse().unwrap())
}

/// A first burst of 32 concurrent decisions on a fresh server finds the scripts loaded:
/// no `NOSCRIPT` failure and no `EVAL`, on standalone Redis and on every Cluster node. On
/// standalone Redis the concurrent decisions share script calls (batches); on Cluster, the
/// 32 subjects' keys are in different slots, so each is a call of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_loaded_before_the_first_burst() {
    let server = RedisServer::start();
    let cluster = parapet_testkit::RedisCluster::start();
    // (a deadline a loaded machine cannot miss: the background load gives up on a timeout)
    let timeout = std::time::Duration::from_secs(2);
    let handles = [
        RedisHandle::builder(server.url())
            .timeout(timeout)
            .build()
            .await
            .unwrap(),
        RedisHandle::cluster(cluster.urls())
            .timeout(timeout)
            .build()
            .await
            .unwrap(),
    ];
    let nodes = [std::slice::from_ref(&server), cluster.nodes()];
    for (handle, nodes) in handles.into_iter().zip(nodes) {
        let layer = RateLimitLayer::builder()
            .policy("second", Quota::per_second(5))
            .store(RedisStore::new(handle).unwrap())
            .build()
            .unwrap();
        // The background load is one round trip per script (four) on every node; wait for
        // it rather than for a fixed time.
        let started = std::time::Instant::now();
        while nodes.iter().any(|n| n.command_calls("script|load") < 4) {
            assert!(started.elapsed() < timeout * 5, "scripts not loaded");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let burst: Vec<_> = (0..32)
            .map(|i| {
                let mut svc = service(&layer);
                tokio::spawn(async move {
                    send(&mut svc, request_from(&format!("192.0.2.{i}")))
                        .await
                        .status()
                })
            })
            .collect();
        for task in burst {
            assert_eq!(task.await.unwrap(), StatusCode::OK);
        }
    }
    // Every decision was made by Redis (one charge written each), in at most 32 calls.
    assert_eq!(server.command_calls("set"), 32);
    assert!((1..=32).contains(&server.command_calls("evalsha")));
    assert_eq!(server.command_calls("eval"), 0);
    assert_eq!(
        failed_evalsha(&server.command(&["INFO", "commandstats"])),
        0
    );
    assert_eq!(cluster.command_calls("set"), 32);
    assert_eq!(cluster.command_calls("evalsha"), 32);
    assert_eq!(cluster.command_calls("eval"), 0);
}

/// Decisions that arrive together share one script call, and stay exact: 300 concurrent
/// requests of one client against `per_minute(100)` admit exactly 100, in fewer calls than
/// decisions, on standalone Redis and on Cluster (one subject: one slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_share_calls_and_stay_exact() {
    let server = RedisServer::shared();
    let cluster = parapet_testkit::RedisCluster::shared();
    for (handle, calls) in [
        (
            RedisHandle::builder(server.url()).build().await.unwrap(),
            Box::new(|| server.command_calls("evalsha")) as Box<dyn Fn() -> u64>,
        ),
        (
            RedisHandle::cluster(cluster.urls()).build().await.unwrap(),
            Box::new(|| cluster.command_calls("evalsha")),
        ),
    ] {
        let layer = RateLimitLayer::builder()
            .policy("minute", Quota::per_minute(100))
            .store(
                RedisStore::new(handle)
                    .unwrap()
                    .prefix(parapet_core::KeyPrefix::new("batched").unwrap()),
            )
            .deny_cache(0)
            .build()
            .unwrap();
        // Warm-up, another client: the connection is up and the script is in Redis's cache.
        assert_eq!(
            send(&mut service(&layer), request_from("198.51.100.1"))
                .await
                .status(),
            StatusCode::OK
        );
        let subject = "198.51.100.7".to_string();
        let before = calls();
        let tasks: Vec<_> = (0..300)
            .map(|_| {
                let mut svc = service(&layer);
                let subject = subject.clone();
                tokio::spawn(async move { send(&mut svc, request_from(&subject)).await.status() })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            match task.await.unwrap() {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("unexpected status {other}"),
            }
        }
        let made = calls() - before;
        assert_eq!(admitted, 100, "exactly the quota");
        assert!(
            made < 300,
            "{made} script calls for 300 concurrent decisions"
        );
    }
}
