//! The Redis handle against real servers: every connection kind works, every call has a
//! deadline, and a restarted server is used again without help.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::time::{Duration, Instant};

use parapet_core::{Command, RedisHandle, Script, StoreError};
use parapet_testkit::{RedisCluster, RedisServer};

async fn ping(handle: &RedisHandle) -> Result<String, StoreError> {
    handle.query(&Command::new("PING")).await
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

/// Every caller moves a call's future at least once (into a box, into a task), so its size
/// is paid on every call: a connection kind's state must not be held inline (deadpool's
/// wait future alone is about 14 KB). `scripts/test` builds with every feature, the pool
/// and Cluster kinds included.
#[tokio::test]
async fn a_call_is_a_small_future_with_every_connection_kind_built_in() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let get = Command::new("GET");
    let query = handle.query::<Option<Vec<u8>>>(&get);
    assert!(
        std::mem::size_of_val(&query) <= 1024,
        "{} bytes",
        std::mem::size_of_val(&query)
    );
    let script = Script::new("return 1");
    let call = script.call(0);
    let eval = handle.eval::<i64>(&call);
    assert!(
        std::mem::size_of_val(&eval) <= 1024,
        "{} bytes",
        std::mem::size_of_val(&eval)
    );
}

#[tokio::test]
async fn scripts_survive_script_flush() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let script = Script::new("return tonumber(ARGV[1]) + 1");
    let mut call = script.call(0);
    call.arg(1);
    let two: i64 = handle.eval(&call).await.unwrap();
    assert_eq!(two, 2);
    server.command(&["SCRIPT", "FLUSH"]);
    let mut call = script.call(0);
    call.arg(2);
    let three: i64 = handle.eval(&call).await.unwrap();
    assert_eq!(three, 3);
    // The EVAL fallback cached the script again: EVALSHA works on its own.
    let exists = server.command(&["SCRIPT", "EXISTS", script.hash()]);
    assert!(exists.contains(":1"), "{exists}");
}

#[tokio::test]
async fn a_script_call_with_the_wrong_number_of_keys_is_refused() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let script = Script::new("return 1");
    let mut call = script.call(2);
    call.key("only-one");
    let err = handle.eval::<i64>(&call).await.unwrap_err();
    assert_eq!(err.kind(), "argument");
}

#[tokio::test]
async fn ping_says_when_redis_is_unreachable() {
    let server = RedisServer::start();
    let url = server.url();
    drop(server);
    let handle = RedisHandle::builder(url).build().await.unwrap();
    let err = handle.ping().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Redis(_) | StoreError::Timeout(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().len() > "redis call failed: ".len(),
        "the cause is in the message: {err}"
    );
}

#[tokio::test]
async fn out_of_memory_is_its_own_error_with_its_cause() {
    let server = RedisServer::start();
    server.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.command(&["CONFIG", "SET", "maxmemory", "1"]);
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let mut set = Command::new("SET");
    set.arg("k").arg("v");
    let err = handle.query::<()>(&set).await.unwrap_err();
    assert_eq!(err.kind(), "oom", "{err:?}");
    assert!(err.to_string().contains("OOM"), "{err}");
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
    // Two distinct keys under one tag: the script writes one and reads the other, which
    // works only if both are on the node the call went to.
    let script = Script::new(
        "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1] + 1); \
         return redis.call('GET', KEYS[1]) + redis.call('GET', KEYS[2])",
    );
    for i in 0..30 {
        let tag = format!("{{user{i}}}");
        let mut call = script.call(2);
        call.key(format!("{tag}:a")).key(format!("{tag}:b")).arg(i);
        let got: i64 = handle.eval(&call).await.unwrap();
        assert_eq!(got, 2 * i + 1);
    }
    // Keys of different tags in one call are refused by the cluster, not silently split.
    let mut split = script.call(2);
    split.key("{x}:a").key("{y}:a").arg(1);
    assert!(handle.eval::<i64>(&split).await.is_err());
    // 30 tags (60 keys) spread over the three masters.
    let sizes: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| n.command(&["DBSIZE"]))
        .collect();
    assert!(sizes.iter().all(|s| s != ":0"), "{sizes:?}");
}

#[tokio::test]
async fn a_script_flushed_on_one_cluster_node_runs_with_another_node_frozen() {
    let cluster = RedisCluster::start();
    let handle = RedisHandle::cluster(cluster.urls()).build().await.unwrap();
    let script = Script::new("return redis.call('INCR', KEYS[1])");
    // One tag per node, so each node has the script cached.
    let mut tags = Vec::new();
    for i in 0..60 {
        let key = format!("{{t{i}}}:n");
        let mut call = script.call(1);
        call.key(key.as_str());
        let _: i64 = handle.eval(&call).await.unwrap();
        tags.push(key);
    }
    let nodes = cluster.nodes();
    let dbsize = |i: usize| -> usize { nodes[i].command(&["DBSIZE"])[1..].parse().unwrap() };
    let on_live_nodes = dbsize(0) + dbsize(1);
    // Flush the script cache everywhere, then freeze one node: calls for keys on the other
    // nodes must not wait on it (no SCRIPT LOAD broadcast).
    for node in nodes {
        node.command(&["SCRIPT", "FLUSH"]);
    }
    nodes[2].pause();
    let mut answered = 0;
    for key in &tags {
        let mut call = script.call(1);
        call.key(key.as_str());
        if handle.eval::<i64>(&call).await.is_ok() {
            answered += 1;
        }
    }
    nodes[2].resume();
    // Every key on a live node is answered.
    assert_eq!(answered, on_live_nodes);
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

/// A slot being migrated: a call for a key the source does not hold follows its `ASK`
/// redirection; a call with several keys gets `TRYAGAIN` (Redis refuses multi-key calls on
/// a slot mid-migration), is retried, and fails within its deadline; once the migration
/// ends, both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_follow_a_slot_in_migration_within_their_deadline() {
    let cluster = RedisCluster::start();
    let deadline = Duration::from_millis(500);
    let handle = RedisHandle::cluster(cluster.urls())
        .timeout(deadline)
        .build()
        .await
        .unwrap();
    let nodes = cluster.nodes();
    let slot = nodes[0].command(&["CLUSTER", "KEYSLOT", "{mig}:a"])[1..].to_owned();
    let source = nodes
        .iter()
        .position(|n| n.command(&["GET", "{mig}:a"]) == "(nil)")
        .unwrap();
    let target = (source + 1) % nodes.len();
    let id = |i: usize| nodes[i].command(&["CLUSTER", "MYID"]);
    let mut set = Command::new("SET");
    set.arg("{mig}:a").arg("1");
    handle.query::<()>(&set).await.unwrap();

    nodes[target].command(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &id(source)]);
    nodes[source].command(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &id(target)]);

    // A key the source does not hold: ASK, followed to the target.
    let one = Script::new("return redis.call('INCR', KEYS[1])");
    let mut fresh = one.call(1);
    fresh.key("{mig}:x");
    assert_eq!(handle.eval::<i64>(&fresh).await.unwrap(), 1);
    assert_eq!(
        nodes[target].command(&["DBSIZE"]),
        ":1",
        "written on the importing node"
    );

    // Several keys: TRYAGAIN, retried, and failed within the deadline, never later.
    let both = Script::new("return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])");
    let mut split = both.call(2);
    split.key("{mig}:a").key("{mig}:z");
    let started = Instant::now();
    let err = handle.eval::<i64>(&split).await.unwrap_err();
    assert!(
        started.elapsed() < deadline + Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, StoreError::Timeout(_) | StoreError::Redis(_)),
        "{err:?}"
    );

    // Finish the migration: move the key, give the slot to the target everywhere.
    let port = nodes[target].port().to_string();
    let moved = nodes[source].command(&[
        "MIGRATE",
        "127.0.0.1",
        &port,
        "",
        "0",
        "5000",
        "KEYS",
        "{mig}:a",
    ]);
    assert_eq!(moved, "+OK");
    for node in nodes {
        node.command(&["CLUSTER", "SETSLOT", &slot, "NODE", &id(target)]);
    }
    let started = Instant::now();
    loop {
        match handle.eval::<i64>(&split).await {
            Ok(n) => {
                assert_eq!(n, 3, "{{mig}}:a was 1, {{mig}}:z new");
                break;
            }
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(5),
                "after migration: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
