//! The Redis handle against real servers: every connection kind works, every call has a
//! deadline, and a restarted server is used again without help.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::time::{Duration, Instant};

use parapet_core::redis::{self, Script};
use parapet_core::{RedisHandle, StoreError};
use parapet_testkit::{RedisCluster, RedisServer};

async fn ping(handle: &RedisHandle) -> Result<String, StoreError> {
    handle.query(&redis::cmd("PING")).await
}

#[tokio::test]
async fn multiplexed_and_pool_answer() {
    let server = RedisServer::start();
    let multiplexed = RedisHandle::builder(server.url()).build().await.unwrap();
    let pool = RedisHandle::builder(server.url())
        .pool(4)
        .build()
        .await
        .unwrap();
    assert_eq!(ping(&multiplexed).await.unwrap(), "PONG");
    assert_eq!(ping(&pool).await.unwrap(), "PONG");
}

#[tokio::test]
async fn scripts_survive_script_flush() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let script = Script::new("return tonumber(ARGV[1]) + 1");
    let two: i64 = handle.eval(&script.arg(1)).await.unwrap();
    assert_eq!(two, 2);
    server.command(&["SCRIPT", "FLUSH"]);
    let three: i64 = handle.eval(&script.arg(2)).await.unwrap();
    assert_eq!(three, 3);
}

#[tokio::test]
async fn a_paused_server_costs_one_deadline_not_more() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url())
        .timeout(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    assert_eq!(ping(&handle).await.unwrap(), "PONG");
    server.pause();
    let started = Instant::now();
    let err = ping(&handle).await.unwrap_err();
    let took = started.elapsed();
    server.resume();
    assert!(
        matches!(err, StoreError::Timeout(_) | StoreError::Redis(_)),
        "{err:?}"
    );
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[tokio::test]
async fn a_restarted_server_is_used_again() {
    let mut server = RedisServer::start();
    let handle = RedisHandle::builder(server.url())
        .timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    assert_eq!(ping(&handle).await.unwrap(), "PONG");
    server.kill();
    assert!(ping(&handle).await.is_err());
    server.restart();
    let started = Instant::now();
    loop {
        if ping(&handle).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no recovery after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cluster_routes_scripts_by_hash_tag() {
    let cluster = RedisCluster::start();
    let handle = RedisHandle::cluster(cluster.urls()).build().await.unwrap();
    let script =
        Script::new("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[2])");
    for i in 0..30 {
        let tag = format!("{{user{i}}}");
        let mut invocation = script.prepare_invoke();
        invocation
            .key(format!("{tag}:a"))
            .key(format!("{tag}:a"))
            .arg(i);
        let got: i64 = handle.eval(&invocation).await.unwrap();
        assert_eq!(got, i);
    }
    // 30 tags spread over the three masters.
    let used = cluster
        .nodes()
        .iter()
        .filter(|n| n.command(&["DBSIZE"]) != ":0")
        .count();
    assert_eq!(used, 3);
}

#[tokio::test]
async fn invalid_configuration_is_an_error() {
    let err = RedisHandle::builder("not a url").build().await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::Redis(_) | StoreError::InvalidConfig(_)
    ));
    let err = RedisHandle::builder("redis://127.0.0.1:1")
        .timeout(Duration::ZERO)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidConfig(_)));
}
