//! A flood of anonymous sessions (one client, no cookie, as fast as it can) cannot lock
//! users out: logins and existing users' writes all succeed after it, in memory and on
//! Redis, and the anonymous sessions stay within their budget.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::*;
use parapet_core::KeyPrefix;
use parapet_session::{MemoryStore, RedisStore, SessionStore};
use parapet_testkit::RedisServer;

const USERS: usize = 100;
const FLOOD: usize = 3_000;

/// Logs `USERS` users in with a cart each, floods, then checks that the `USERS` existing
/// users can still write and `USERS` new users can log in.
async fn flood_then_users(store: Arc<dyn SessionStore>) {
    let app = app(layer(store, |b| b));
    let mut existing = Vec::new();
    for i in 0..USERS {
        let client = Client::new(app.clone());
        assert_eq!(client.send("POST", "/put/cart", "[1]").await.status, 200);
        let login = client.send("POST", &format!("/login/old{i}"), "").await;
        assert_eq!(login.status, 200);
        existing.push(client);
    }
    for _ in 0..FLOOD {
        let attacker = Client::new(app.clone());
        let reply = attacker.send("POST", "/put/cart", "[9]").await;
        assert_eq!(reply.status, StatusCode::OK, "the flood itself is served");
    }
    for (i, client) in existing.iter().enumerate() {
        let write = client.send("POST", "/put/cart", "[1,2]").await;
        assert_eq!(write.status, 200, "existing user {i} writes");
        let me = client.send("GET", "/me", "").await;
        assert_eq!(me.body, format!("\"old{i}\""), "still logged in");
    }
    for i in 0..USERS {
        let client = Client::new(app.clone());
        assert_eq!(client.send("POST", "/put/cart", "[3]").await.status, 200);
        let login = client.send("POST", &format!("/login/new{i}"), "").await;
        assert_eq!(login.status, 200, "login {i} after the flood");
        // The cart carried over: the anonymous session was not evicted before login.
        let cart = client.send("GET", "/get/cart", "").await;
        assert_eq!(cart.body, "\"[3]\"");
    }
}

#[tokio::test]
async fn an_anonymous_flood_does_not_lock_users_out_of_memory() {
    let store = MemoryStore::new()
        .capacity(4 * USERS)
        .anonymous_capacity(1_000);
    flood_then_users(Arc::new(store.clone())).await;
    assert!(
        store.anonymous_len() <= 1_000,
        "{} anonymous sessions",
        store.anonymous_len()
    );
}

/// Counts the live anonymous sessions under `prefix` on `server`.
fn anonymous_sessions(server: &RedisServer, prefix: &str) -> usize {
    let script = "local n = 0 \
        for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
          if redis.call('HEXISTS', k, 'm:user') == 0 and redis.call('HEXISTS', k, 'm:alias') == 0 \
          then n = n + 1 end \
        end return n";
    server
        .command(&["EVAL", script, "0", &format!("{prefix}:sess:*")])
        .trim_start_matches(':')
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_anonymous_flood_stays_within_its_budget_on_redis() {
    let server = RedisServer::shared();
    let prefix = prefix();
    let store = RedisStore::new(handle(Backend::Redis).await)
        .unwrap()
        .timeout(std::time::Duration::from_secs(2))
        .unwrap()
        .prefix(KeyPrefix::new(prefix.clone()).unwrap())
        .anonymous_budget(800);
    flood_then_users(Arc::new(store)).await;
    let anonymous = anonymous_sessions(server, &prefix);
    assert!(
        anonymous <= 800,
        "{anonymous} anonymous sessions for a budget of 800"
    );
    assert!(anonymous >= 400, "the budget is used ({anonymous})");
}

#[tokio::test]
async fn an_anonymous_flood_does_not_lock_users_out_of_a_cluster() {
    let store = RedisStore::new(handle(Backend::Cluster).await)
        .unwrap()
        .timeout(std::time::Duration::from_secs(2))
        .unwrap()
        .prefix(KeyPrefix::new(prefix()).unwrap())
        .anonymous_budget(800);
    flood_then_users(Arc::new(store)).await;
}
