//! Criterion benches of one request through the session layer, in memory, without HTTP: an
//! untouched request (the handler never asks for its session) and a read of one field, for
//! parapet and tower-sessions (its `MemoryStore`), and the same router without a session
//! layer as the baseline, each request carrying the cookie of an existing session. On
//! Redis: a read through parapet's `RedisStore`, beside the floor it is held to, a handler
//! making one `HGETALL` of a hash shaped like the session (the read's reply shape).
//!
//! `cargo bench -p parapet-benches --bench session` (starts a `redis-server` for the Redis
//! pair)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[path = "bench_setup.rs"]
mod bench_setup;
#[path = "session_routes.rs"]
mod session_routes;

use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tower_parapet::core::Command;
use tower_parapet::session::{MemoryStore, RedisStore, SessionLayer};
use tower_sessions::{MemoryStore as TsMemoryStore, SessionManagerLayer};

use bench_setup::{current_thread, redis_on_current_thread};
use session_routes::{floor_hgetall, parapet_routes, tower_sessions_routes};

fn request(path: &str, cookie: &str) -> Request<Body> {
    let mut request = Request::get(path).header("user-agent", "bench/1.0");
    if !cookie.is_empty() {
        request = request.header("cookie", cookie);
    }
    request.body(Body::empty()).unwrap()
}

async fn login(app: &Router) -> String {
    let response = app.clone().oneshot(request("/login", "")).await.unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

fn session_layer(c: &mut Criterion) {
    let runtime = current_thread();
    let bare = Router::new().route("/untouched", get(|| async { "hello" }));
    let parapet = parapet_routes().layer(
        SessionLayer::builder()
            .store(Arc::new(MemoryStore::new()))
            .build()
            .unwrap(),
    );
    let theirs = tower_sessions_routes().layer(SessionManagerLayer::new(TsMemoryStore::default()));
    let ours_cookie = runtime.block_on(login(&parapet));
    let their_cookie = runtime.block_on(login(&theirs));
    let mut group = c.benchmark_group("session_layer");
    for (name, app, path, cookie) in [
        (
            "no layer/untouched",
            &bare,
            "/untouched",
            ours_cookie.as_str(),
        ),
        (
            "parapet/untouched",
            &parapet,
            "/untouched",
            ours_cookie.as_str(),
        ),
        (
            "tower-sessions/untouched",
            &theirs,
            "/untouched",
            their_cookie.as_str(),
        ),
        ("parapet/read", &parapet, "/read", ours_cookie.as_str()),
        (
            "tower-sessions/read",
            &theirs,
            "/read",
            their_cookie.as_str(),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let response = runtime
                    .block_on(app.clone().oneshot(request(path, cookie)))
                    .unwrap();
                assert_eq!(response.status(), 200);
                black_box(response)
            })
        });
    }
    group.finish();
}

fn redis_read(c: &mut Criterion) {
    let (runtime, _server, redis) = redis_on_current_thread();
    let parapet = parapet_routes().layer(
        SessionLayer::builder()
            .store(Arc::new(RedisStore::new(redis.clone()).unwrap()))
            .build()
            .unwrap(),
    );
    let cookie = runtime.block_on(login(&parapet));
    // The session's hash as the store keeps it, under another key, for the floor.
    let mut keys = Command::new("KEYS");
    keys.arg("*");
    let keys: Vec<String> = runtime.block_on(redis.query(&keys)).unwrap();
    let hash = keys
        .iter()
        .find(|key| {
            let mut kind = Command::new("TYPE");
            kind.arg(key.as_str());
            runtime.block_on(redis.query::<String>(&kind)).unwrap() == "hash"
        })
        .expect("the session's hash");
    let mut copy = Command::new("COPY");
    copy.arg(hash).arg("bench:floor:hash");
    let _: i64 = runtime.block_on(redis.query(&copy)).unwrap();
    let mut len = Command::new("HLEN");
    len.arg("bench:floor:hash");
    let fields: usize = runtime.block_on(redis.query(&len)).unwrap();
    let floor = floor_hgetall(redis, 2 * fields);
    let mut group = c.benchmark_group("session_redis");
    for (name, app) in [
        ("floor: one HGETALL/read", &floor),
        ("parapet redis/read", &parapet),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let response = runtime
                    .block_on(app.clone().oneshot(request("/read", &cookie)))
                    .unwrap();
                assert_eq!(response.status(), 200);
                black_box(response)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, session_layer, redis_read);
criterion_main!(benches);
