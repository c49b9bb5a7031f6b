//! Criterion benches of one request through the session layer, in memory, without HTTP: an
//! untouched request (the handler never asks for its session) and a read of one field, for
//! parapet and tower-sessions (its `MemoryStore`), and the same router without a session
//! layer as the baseline, each request carrying the cookie of an existing session.
//!
//! `cargo bench -p parapet-benches --bench session`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

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
use tower_parapet::session::{MemoryStore, SessionLayer};
use tower_sessions::{MemoryStore as TsMemoryStore, SessionManagerLayer};

use session_routes::{parapet_routes, tower_sessions_routes};

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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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

criterion_group!(benches, session_layer);
criterion_main!(benches);
