//! The routes both session benches serve, on parapet's `Session` and on tower-sessions':
//! `/login` stores a field, `/untouched` never asks for the session, `/read` reads the
//! field, `/write` writes another.

use axum::Router;
use axum::routing::get;
use tower_parapet::session::Session;

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
