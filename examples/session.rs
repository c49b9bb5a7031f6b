//! A shopping-cart API on server-side sessions: log in, count visits, fill a cart, list
//! and revoke your sessions.
//!
//! ```text
//! cargo run --release --example session                        # in-memory, port 3002
//! curl -s -c jar -b jar localhost:3002/cart/items/42 -X POST
//! curl -s -c jar -b jar localhost:3002/login -H 'content-type: application/json' -d '{"user":"alice"}'
//! curl -s -c jar -b jar localhost:3002/me                      # {"user":"alice","visits":1}
//! curl -s -c jar -b jar localhost:3002/cart                    # {"items":["42"]}
//! curl -s -c jar -b jar localhost:3002/sessions
//! REDIS_URL=redis://127.0.0.1:6379 PORT=3001 cargo run --release --example session
//! ```
//!
//! The cookie is `Secure` (as it should be in production); curl's cookie jar (`-c jar -b
//! jar`) and browsers keep `Secure` cookies on `http://localhost`, so the commands above
//! work over plain HTTP on this machine. On another host name over plain HTTP, the cookie
//! would not come back: serve HTTPS there.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HOST`, `PORT` | where to listen (`0.0.0.0` for every interface) | `127.0.0.1`, 3002 |
//! | `REDIS_URL` | keep sessions in this Redis, shared by every instance (checked at start) | in-memory |
//! | `RUST_LOG` | log filter | `info` |
//!
//! | route | does |
//! |---|---|
//! | `POST /login` `{"user": "alice"}` | a new session id bound to the user (the cart carries over) |
//! | `GET /me` | `{"user": …, "visits": n}`, `n` counting this session's `GET /me`; 401 when not logged in |
//! | `POST /cart/items/{id}` | adds item `id` (each item its own field: concurrent adds all stay) |
//! | `GET /cart` | `{"items": [...]}` |
//! | `GET /sessions` | this user's sessions: created, last seen, IP, user agent, current |
//! | `DELETE /sessions/others` | ends every other session of this user, on every instance |
//! | `POST /logout` | ends this session |
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::error::Error;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_parapet::core::RedisHandle;
use tower_parapet::session::{RedisStore, Session, SessionError, SessionLayer};

// The examples' HTTP server: header-read timeout, connection limit, graceful shutdown.
#[path = "support/server.rs"]
#[allow(dead_code, clippy::duplicate_mod)] // also included by the tests beside each example
mod server;

/// Fields holding cart items are named `item:<id>`.
const ITEM: &str = "item:";

/// The app: sessions in memory without a Redis URL, on Redis with one.
pub async fn app(redis_url: Option<&str>) -> Result<Router, Box<dyn Error>> {
    let mut sessions = SessionLayer::builder();
    if let Some(url) = redis_url {
        let redis = RedisHandle::builder(url).build().await?;
        redis
            .ping()
            .await
            .map_err(|e| format!("cannot reach Redis at {}: {e}", redis.target()))?;
        sessions = sessions.store(RedisStore::new(redis)?);
    }
    Ok(Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/cart/items/{id}", post(add_item))
        .route("/cart", get(cart))
        .route("/sessions", get(sessions_of_user))
        .route("/sessions/others", delete(revoke_others))
        .route("/logout", post(logout))
        .layer(sessions.build()?))
}

fn problem(status: StatusCode, title: &str) -> Response {
    (
        status,
        Json(json!({ "title": title, "status": status.as_u16() })),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct Login {
    user: String,
}

async fn login(session: Session, Json(login): Json<Login>) -> Result<Response, SessionError> {
    let valid = (1..=64).contains(&login.user.len())
        && login
            .user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if !valid {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "user must be 1 to 64 of [A-Za-z0-9-_.@]",
        ));
    }
    session.set_user(&login.user).await?;
    Ok(Json(json!({ "user": login.user })).into_response())
}

async fn me(session: Session) -> Result<Response, SessionError> {
    let Some(user) = session.user().await? else {
        return Ok(problem(StatusCode::UNAUTHORIZED, "not logged in"));
    };
    let visits = session.incr("visits", 1).await?;
    Ok(Json(json!({ "user": user, "visits": visits })).into_response())
}

async fn add_item(session: Session, Path(id): Path<String>) -> Result<Response, SessionError> {
    if id.is_empty() || id.len() > 64 {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "item id must be 1 to 64 bytes",
        ));
    }
    session.insert(&format!("{ITEM}{id}"), &true).await?;
    Ok(Json(json!({ "added": id })).into_response())
}

async fn cart(session: Session) -> Result<Json<Value>, SessionError> {
    let items: Vec<String> = session
        .keys()
        .await?
        .into_iter()
        .filter_map(|k| k.strip_prefix(ITEM).map(str::to_owned))
        .collect();
    Ok(Json(json!({ "items": items })))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn sessions_of_user(session: Session) -> Result<Json<Value>, SessionError> {
    let list: Vec<Value> = session
        .sessions()
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "handle": s.handle,
                "created": unix(s.created),
                "last_seen": unix(s.last_seen),
                "expires": unix(s.expires),
                "ip": s.ip,
                "user_agent": s.user_agent,
                "current": s.current,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": list })))
}

async fn revoke_others(session: Session) -> Result<Json<Value>, SessionError> {
    let revoked = session.revoke_others().await?;
    Ok(Json(json!({ "revoked": revoked })))
}

async fn logout(session: Session) -> Result<Json<Value>, SessionError> {
    session.destroy().await?;
    Ok(Json(json!({ "logged_out": true })))
}

#[tokio::main]
async fn main() {
    // RUST_LOG as `level` or `target=level,…` (tracing-subscriber's Targets: no regex to
    // compile), `info` by default.
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(filter)
        .init();
    if let Err(e) = run().await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3002);
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let app = app(redis_url.as_deref()).await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    tracing::info!(
        "listening on http://{} ({} sessions); try: curl -s -c jar -b jar localhost:{port}/cart/items/42 -X POST",
        listener.local_addr()?,
        if redis_url.is_some() {
            "redis"
        } else {
            "in-memory"
        },
    );
    server::serve(
        listener,
        app,
        server::Limits::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
