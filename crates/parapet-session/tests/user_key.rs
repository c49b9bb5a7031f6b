//! `LoadUserLayer` + `UserKey`: a rate limit per logged-in user, in memory and on Redis.
//! The user comes from the store, so devices of one user share a bucket, users do not,
//! and a forged cookie is anonymous; a store that cannot answer is a 503 before the
//! handler, never a skipped limit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Extension, Path};
use axum::routing::{get, post};
use common::{Backend, Client, layer, store};
use parapet_core::{KeyPrefix, RedisHandle};
use parapet_ratelimit::key::KeyExtractor;
use parapet_ratelimit::{Quota, RateLimitLayer, RequestHead, Subject};
use parapet_session::{
    LoadUserLayer, RedisStore, Session, SessionError, SessionLayer, SessionStore, SessionUser,
    UserKey,
};
use parapet_testkit::RedisServer;

/// Every anonymous request shares one bucket here (a test has one client address).
fn anonymous(_: &RequestHead<'_>) -> Option<Subject> {
    Some(Subject::new("anon", "everyone"))
}

/// `/hit` behind a limit of 3 a minute per user, `/login/{user}` outside it; `calls`
/// counts the handler's runs. `load_user: false` leaves the `LoadUserLayer` out.
fn app(sessions: SessionLayer, calls: Arc<AtomicUsize>, load_user: bool) -> Router {
    let limit = RateLimitLayer::builder()
        .policy("user", Quota::per_minute(3))
        .key(UserKey.or(anonymous))
        .build()
        .unwrap();
    let hit = get(move |user: Option<Extension<SessionUser>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { user.map_or_else(|| "anonymous".to_owned(), |u| u.0.to_string()) }
    });
    let mut limited = Router::new().route("/hit", hit).route_layer(limit);
    if load_user {
        limited = limited.route_layer(LoadUserLayer::new());
    }
    limited
        .route(
            "/login/{user}",
            post(|session: Session, Path(user): Path<String>| async move {
                session.set_user(&user).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .layer(sessions)
}

async fn statuses(client: &Client, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(client.send("GET", "/hit", "").await.status.as_u16());
    }
    out
}

async fn per_user_buckets(backend: Backend) {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(layer(store(backend).await, |b| b), calls.clone(), true);
    let (laptop, phone, other) = (
        Client::new(app.clone()),
        Client::new(app.clone()),
        Client::new(app.clone()),
    );
    for (client, user) in [(&laptop, "ann"), (&phone, "ann"), (&other, "bob")] {
        assert_eq!(
            client
                .send("POST", &format!("/login/{user}"), "")
                .await
                .status,
            200
        );
    }
    assert_ne!(laptop.cookie(), phone.cookie(), "two sessions of one user");
    // The handler sees who it is.
    assert_eq!(laptop.send("GET", "/hit", "").await.body, "ann");
    // Two devices, one bucket of 3.
    assert_eq!(statuses(&phone, 2).await, [200, 200]);
    assert_eq!(statuses(&laptop, 1).await, [429]);
    assert_eq!(statuses(&phone, 1).await, [429]);
    // Another user is untouched.
    assert_eq!(statuses(&other, 3).await, [200, 200, 200]);
    // Anonymous clients fall back to their own key; a forged cookie is anonymous, not a
    // fresh bucket.
    let anonymous = Client::new(app.clone());
    let first = anonymous.send("GET", "/hit", "").await;
    assert_eq!(first.body, "anonymous");
    // Without a session id nothing was read: the answer does not vary on the cookie.
    assert!(first.headers.get("vary").is_none(), "{:?}", first.headers);
    assert_eq!(statuses(&anonymous, 2).await, [200, 200]);
    let forger = Client::new(app.clone());
    forger.set_cookie_value(Some(format!("__Host-session={}", "A".repeat(64))));
    assert_eq!(statuses(&forger, 1).await, [429]);
    // 1 + 2 + 3 + 1 + 2 admitted; the refused ones never reached the handler.
    assert_eq!(calls.load(Ordering::SeqCst), 9);
}

#[tokio::test]
async fn devices_share_a_bucket_users_do_not_in_memory() {
    per_user_buckets(Backend::Memory).await;
}

#[tokio::test]
async fn devices_share_a_bucket_users_do_not_on_redis() {
    per_user_buckets(Backend::Redis).await;
}

/// Without the `LoadUserLayer` the key is absent and the fallback decides: the user is
/// not made up from the cookie.
#[tokio::test]
async fn without_the_load_user_layer_the_key_is_absent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(layer(store(Backend::Memory).await, |b| b), calls, false);
    let (ann, bob) = (Client::new(app.clone()), Client::new(app));
    ann.send("POST", "/login/ann", "").await;
    bob.send("POST", "/login/bob", "").await;
    assert_eq!(ann.send("GET", "/hit", "").await.body, "anonymous");
    assert_eq!(statuses(&ann, 2).await, [200, 200]);
    assert_eq!(statuses(&bob, 1).await, [429], "one shared fallback bucket");
}

/// A store that cannot answer: a logged-in request is a 503 within the deadline, before
/// the limiter and the handler; a request without a cookie needs no store and passes.
#[tokio::test]
async fn a_paused_store_is_a_503_before_the_handler() {
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url()).build().await.unwrap();
    let store: Arc<dyn SessionStore> = Arc::new(
        RedisStore::new(handle)
            .unwrap()
            .prefix(KeyPrefix::new("user-key").unwrap()),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(
        layer(store, |b| b.store_timeout(Duration::from_millis(100))),
        calls.clone(),
        true,
    );
    let ann = Client::new(app.clone());
    ann.send("POST", "/login/ann", "").await;
    server.pause();
    let started = Instant::now();
    let reply = ann.send("GET", "/hit", "").await;
    let took = started.elapsed();
    let anonymous = Client::new(app.clone()).send("GET", "/hit", "").await;
    server.resume();
    assert_eq!(anonymous.status, 200, "no session id, no store call");
    assert_eq!(anonymous.body, "anonymous");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.headers["retry-after"], "1");
    assert!(took < Duration::from_millis(900), "took {took:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the anonymous request ran"
    );
    assert_eq!(ann.send("GET", "/hit", "").await.body, "ann", "recovered");
}

/// Without a `SessionLayer` outside, the misconfiguration is a 500 that says so.
#[tokio::test]
async fn without_a_session_layer_it_is_a_500() {
    let app: Router = Router::new()
        .route("/hit", get(|| async { "never" }))
        .route_layer(LoadUserLayer::new());
    let reply = Client::new(app).send("GET", "/hit", "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("session layer missing"),
        "{}",
        reply.body
    );
}
