//! Redis slow, paused, killed and restarted: a clear 503 within the deadline, never a new
//! empty session, and recovery by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Client, app, layer};
use parapet_core::{KeyPrefix, RedisHandle};
use parapet_session::{RedisStore, SessionStore};
use parapet_testkit::RedisServer;

async fn redis_app(server: &RedisServer, prefix: &str) -> Client {
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let store: Arc<dyn SessionStore> = Arc::new(
        RedisStore::new(handle)
            .unwrap()
            .prefix(KeyPrefix::new(prefix).unwrap()),
    );
    // The layer's default deadline (100 ms): what these tests are about.
    Client::new(app(layer(store, |b| {
        b.store_timeout(Duration::from_millis(100))
    })))
}

#[tokio::test]
async fn a_paused_redis_gets_503_within_the_deadline_and_nothing_acknowledged_is_lost() {
    let server = RedisServer::start();
    let client = redis_app(&server, "pause").await;
    client.send("POST", "/login/ivy", "").await;
    assert_eq!(client.send("POST", "/put/cart", "kept").await.status, 200);
    let cookie = client.cookie();
    server.pause();
    for (method, path) in [("GET", "/me"), ("POST", "/put/cart2"), ("POST", "/visit")] {
        let started = Instant::now();
        let reply = client.send(method, path, "x").await;
        let took = started.elapsed();
        assert_eq!(reply.status, 503, "{method} {path}: {}", reply.body);
        assert_eq!(reply.headers["retry-after"], "1");
        assert!(reply.body.contains("session store unavailable"));
        assert!(
            took < Duration::from_millis(900),
            "{method} {path} took {took:?}"
        );
        assert_eq!(reply.set_cookie(), None, "the client keeps its cookie");
    }
    assert_eq!(client.cookie(), cookie);
    // A route that does not touch its session is not affected.
    assert_eq!(client.send("GET", "/untouched", "").await.status, 200);
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let me = client.send("GET", "/me", "").await;
        if me.status == 200 {
            assert_eq!(me.body, "\"ivy\"", "still logged in");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", me.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.send("GET", "/get/cart", "").await.body, "\"kept\"");
}

#[tokio::test]
async fn a_killed_redis_gets_503_and_the_layer_recovers_after_a_restart() {
    let mut server = RedisServer::start();
    let client = redis_app(&server, "kill").await;
    client.send("POST", "/login/jon", "").await;
    server.kill();
    let started = Instant::now();
    let reply = client.send("GET", "/me", "").await;
    assert_eq!(reply.status, 503);
    assert!(started.elapsed() < Duration::from_millis(900));
    // A new visitor's first write is refused too: no session is made up.
    let stranger = Client::new(client.app.clone());
    let reply = stranger.send("POST", "/put/a", "1").await;
    assert_eq!((reply.status.as_u16(), reply.set_cookie()), (503, None));
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = stranger.send("POST", "/login/jon", "").await;
        if reply.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", reply.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stranger.send("GET", "/me", "").await.body, "\"jon\"");
}

#[tokio::test]
async fn redis_never_holds_a_usable_id() {
    let server = RedisServer::start();
    let client = redis_app(&server, "dump").await;
    client.send("POST", "/login/kim", "").await;
    client.send("POST", "/put/a", "1").await;
    let cookie = client.cookie().unwrap();
    let value = cookie.split_once('=').unwrap().1;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .unwrap();
    let secret_hex: String = bytes[..32].iter().map(|b| format!("{b:02x}")).collect();
    let keys = server.command(&["KEYS", "dump:*"]);
    assert!(keys.contains("dump:sess:"), "{keys}");
    let mut dump = keys.clone();
    for key in keys.split_whitespace().filter(|k| k.starts_with("dump:")) {
        let kind = server.command(&["TYPE", key]);
        if kind.contains("hash") {
            dump.push_str(&server.command(&["HGETALL", key]));
        } else {
            dump.push_str(&server.command(&["ZRANGE", key, "0", "-1"]));
        }
        assert!(
            server
                .command(&["PTTL", key])
                .trim_start_matches(':')
                .parse::<i64>()
                .unwrap()
                > 0,
            "{key} has a TTL"
        );
    }
    assert!(!dump.contains(value), "the cookie value is in Redis");
    assert!(!dump.contains(&secret_hex), "the secret is in Redis");
    assert!(
        !dump.contains(&value[..43]),
        "the secret's base64 is in Redis"
    );
}

#[tokio::test]
async fn a_read_is_one_redis_command_and_a_write_one_script_call() {
    let server = RedisServer::start();
    let client = redis_app(&server, "trips").await;
    client.send("POST", "/put/a", "1").await;
    // The first call of each script loads it (EVALSHA, NOSCRIPT, then EVAL): once per
    // script and server.
    client.send("POST", "/put/w", "1").await;
    client.send("GET", "/get/a", "").await;
    let count = || {
        (
            server.command_calls("hgetall"),
            server.command_calls("evalsha"),
            server.command_calls("eval"),
        )
    };
    let before = count();
    assert_eq!(client.send("GET", "/get/a", "").await.body, "\"1\"");
    let after_read = count();
    assert_eq!(
        (
            after_read.0 - before.0,
            after_read.1 - before.1,
            after_read.2 - before.2
        ),
        (1, 0, 0),
        "a read: one HGETALL, no script"
    );
    assert_eq!(client.send("POST", "/put/b", "2").await.status, 200);
    let after_write = count();
    assert_eq!(
        (
            after_write.0 - after_read.0,
            after_write.1 - after_read.1,
            after_write.2 - after_read.2
        ),
        (0, 1, 0),
        "a write: one EVALSHA"
    );
    assert_eq!(client.send("GET", "/untouched", "").await.status, 200);
    assert_eq!(count(), after_write, "untouched: nothing");
}

/// Logged-in sessions of `user` in Redis under `prefix`.
fn sessions_of(server: &RedisServer, prefix: &str, user: &str) -> usize {
    let script = "local n = 0 \
        for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
          if redis.call('HGET', k, 'm:user') == ARGV[2] then n = n + 1 end \
        end return n";
    server
        .command(&["EVAL", script, "0", &format!("{prefix}:sess:*"), user])
        .trim_start_matches(':')
        .parse()
        .unwrap()
}

/// A login answered 503 because Redis froze past the deadline runs late in Redis when it
/// thaws; the layer takes that session out again, so it neither lingers nor counts toward
/// the user's `max_sessions`.
#[tokio::test]
async fn a_login_answered_503_leaves_no_session_behind() {
    use parapet_session::OverLimit;
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let store: Arc<dyn SessionStore> = Arc::new(
        RedisStore::new(handle)
            .unwrap()
            .prefix(KeyPrefix::new("undo").unwrap()),
    );
    let app = app(layer(store, |b| {
        b.store_timeout(Duration::from_millis(100))
            .max_sessions(1, OverLimit::RejectNew)
    }));
    // Connected, and the scripts loaded, before Redis freezes.
    let warm = Client::new(app.clone());
    assert_eq!(warm.send("POST", "/login/ann", "").await.status, 200);
    let first = Client::new(app.clone());
    server.pause();
    assert_eq!(first.send("POST", "/login/zoe", "").await.status, 503);
    assert_eq!(first.cookie(), None, "no id was handed out");
    server.resume();
    // The late create ran, then its undo: none left, and none after the later undos.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sessions_of(&server, "undo", "zoe") != 0 {
        assert!(Instant::now() < deadline, "the late session stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = Client::new(app.clone());
    assert_eq!(
        second.send("POST", "/login/zoe", "").await.status,
        200,
        "the 503 login does not count toward max_sessions (1, reject new)"
    );
    assert_eq!(second.send("GET", "/me", "").await.body, "\"zoe\"");
    assert_eq!(sessions_of(&server, "undo", "zoe"), 1);
}
