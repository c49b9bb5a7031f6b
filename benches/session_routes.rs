//! The routes both session benches serve, on parapet's `Session` and on tower-sessions':
//! `/login` stores a field, `/untouched` never asks for the session, `/read` reads the
//! field, `/write` writes another. And the floor of a read on Redis both hold the layer
//! to.

use axum::Router;
use axum::routing::get;
use tower_parapet::core::{Command, RedisHandle};
use tower_parapet::session::Session;

/// The floor of a session read on Redis: `/read` makes one `HGETALL` of the hash at
/// `bench:floor:hash` (shaped like a session) on parapet's handle, the reply read as
/// parapet's session store reads it, and checks it holds `elements` (fields and values).
#[allow(dead_code)] // not every bench including this module reads Redis
pub fn floor_hgetall(redis: RedisHandle, elements: usize) -> Router {
    Router::new().route(
        "/read",
        get(move || {
            let redis = redis.clone();
            async move {
                let mut all = Command::new("HGETALL");
                all.arg("bench:floor:hash");
                let fields: Vec<Vec<u8>> = redis.query(&all).await.unwrap();
                assert_eq!(fields.len(), elements, "the floor's hash is there");
                "hello"
            }
        }),
    )
}

/// The routes, on parapet's `Session`.
pub fn parapet_routes() -> Router {
    Router::new()
        .route(
            "/login",
            get(|s: Session| async move {
                s.insert("user", "someone").await.unwrap();
                "ok"
            }),
        )
        .route("/untouched", get(|| async { "hello" }))
        .route(
            "/read",
            get(|s: Session| async move {
                let user: Option<String> = s.get("user").await.unwrap();
                assert!(user.is_some(), "the session was found");
                "hello"
            }),
        )
        .route(
            "/write",
            get(|s: Session| async move {
                s.insert("n", &1).await.unwrap();
                "hello"
            }),
        )
}

/// The same routes on tower-sessions' `Session`.
pub fn tower_sessions_routes() -> Router {
    use tower_sessions::Session;
    Router::new()
        .route(
            "/login",
            get(|s: Session| async move {
                s.insert("user", "someone").await.unwrap();
                "ok"
            }),
        )
        .route("/untouched", get(|| async { "hello" }))
        .route(
            "/read",
            get(|s: Session| async move {
                let user: Option<String> = s.get("user").await.unwrap();
                assert!(user.is_some(), "the session was found");
                "hello"
            }),
        )
        .route(
            "/write",
            get(|s: Session| async move {
                s.insert("n", 1).await.unwrap();
                "hello"
            }),
        )
}
