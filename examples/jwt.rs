//! A token API: log in for a JWT, read your claims, log out (revoking the token on every
//! instance), and let an admin revoke every token of a user.
//!
//! ```text
//! cargo run --release --example jwt                            # in-memory, port 3003
//! TOKEN=$(curl -s localhost:3003/login -H 'content-type: application/json' -d '{"user":"alice"}' | jq -r .token)
//! curl -s localhost:3003/me -H "authorization: Bearer $TOKEN"  # the claims
//! curl -s -X POST localhost:3003/logout -H "authorization: Bearer $TOKEN"
//! curl -si localhost:3003/me -H "authorization: Bearer $TOKEN" # 401, error="invalid_token"
//! ADMIN=$(curl -s localhost:3003/login -H 'content-type: application/json' -d '{"user":"admin"}' | jq -r .token)
//! curl -s -X POST localhost:3003/admin/users/alice/revoke -H "authorization: Bearer $ADMIN"
//! REDIS_URL=redis://127.0.0.1:6379 JWT_SECRET=... PORT=3001 cargo run --release --example jwt
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HOST`, `PORT` | where to listen (`0.0.0.0` for every interface) | `127.0.0.1`, 3003 |
//! | `REDIS_URL` | keep revocations in this Redis, shared by every instance (checked at start) | in-memory |
//! | `JWT_SECRET` | the HS256 secret, at least 32 bytes; every instance needs the same | a development secret, with a warning, and the server listens on 127.0.0.1 only |
//! | `RUST_LOG` | log filter | `info` |
//!
//! | route | does |
//! |---|---|
//! | `POST /login` `{"user": "alice"}` | `{"token": …}`: HS256 with `sub`, `jti`, `iat`, `exp` in 15 minutes; `admin` gets `role: admin` and `scope: admin`. Anyone may log in as anyone: a demo |
//! | `GET /me` | the token's claims; 401 with `WWW-Authenticate` without a valid token |
//! | `POST /logout` | revokes the presented token, on every instance |
//! | `POST /admin/users/{user}/revoke` | admin only (403 `insufficient_scope` otherwise): revokes every token of `user` issued so far — tokens carry `iat` in milliseconds, so a login right after the revocation is not caught by it |
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::error::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_parapet::core::{RedisHandle, StoreError};
use tower_parapet::jwt::jsonwebtoken::{self, EncodingKey, Header};
use tower_parapet::jwt::{Claims, JwtLayer, Revocations, VerifiedToken};

// The examples' HTTP server: header-read timeout, connection limit, graceful shutdown.
#[path = "support/server.rs"]
#[allow(dead_code, clippy::duplicate_mod)] // also included by the tests beside each example
mod server;

/// The secret used when `JWT_SECRET` is unset: for development only.
pub const DEVELOPMENT_SECRET: &str = "parapet development secret: never use in production";

/// What the handlers share.
#[derive(Clone)]
struct App {
    key: EncodingKey,
    revocations: Revocations,
}

/// The app: revocations in memory without a Redis URL, on Redis with one.
pub async fn app(redis_url: Option<&str>, secret: &[u8]) -> Result<Router, Box<dyn Error>> {
    let revocations = match redis_url {
        None => Revocations::memory(),
        Some(url) => {
            let redis = RedisHandle::builder(url).build().await?;
            redis
                .ping()
                .await
                .map_err(|e| format!("cannot reach Redis at {}: {e}", redis.target()))?;
            let revocations = Revocations::redis(redis)?;
            if !revocations.wait_current(Duration::from_secs(5)).await {
                tracing::warn!(
                    "the revocation replica is not current yet: requests get 503 until it is"
                );
            }
            revocations
        }
    };
    let guard = JwtLayer::builder()
        .hs256(secret)
        .issuer("parapet-example")
        .realm("parapet-example")
        .require_jti()
        .revocations(revocations.clone())
        .build()?;
    let state = App {
        key: EncodingKey::from_secret(secret),
        revocations,
    };
    let guarded = Router::new()
        .route("/me", axum::routing::get(me))
        .route("/logout", post(logout))
        .route("/admin/users/{user}/revoke", post(revoke_user))
        .layer(guard);
    Ok(Router::new()
        .route("/login", post(login))
        .merge(guarded)
        .with_state(state))
}

fn problem(status: StatusCode, title: &str) -> Response {
    (
        status,
        Json(json!({ "title": title, "status": status.as_u16() })),
    )
        .into_response()
}

fn store_error(e: StoreError) -> Response {
    tracing::warn!("revocation failed: {e}");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "revocations are unavailable",
    )
}

#[derive(serde::Deserialize)]
struct Login {
    user: String,
}

async fn login(State(app): State<App>, Json(login): Json<Login>) -> Response {
    let valid = (1..=64).contains(&login.user.len())
        && login
            .user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if !valid {
        return problem(
            StatusCode::BAD_REQUEST,
            "user must be 1 to 64 of [A-Za-z0-9-_.@]",
        );
    }
    // `iat` carries milliseconds (RFC 7519 NumericDate may have a fraction): a revocation
    // refuses the tokens issued up to its millisecond, so a login right after one is fine.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).unwrap();
    let mut claims = json!({
        "iss": "parapet-example",
        "sub": login.user,
        "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "iat": now_ms as f64 / 1000.0,
        "exp": now_ms / 1000 + 15 * 60,
    });
    if login.user == "admin" {
        claims["role"] = json!("admin");
        claims["scope"] = json!("admin");
    }
    let token = jsonwebtoken::encode(&Header::default(), &claims, &app.key).unwrap();
    Json(json!({ "token": token })).into_response()
}

async fn me(Claims(claims): Claims<Value>) -> Json<Value> {
    Json(claims)
}

async fn logout(State(app): State<App>, token: VerifiedToken) -> Response {
    // A full set (someone logging in and out in a loop?) widens to the user's tokens, or to
    // every token: an error here means Redis could not be reached.
    match app.revocations.revoke_token(&token).await {
        Ok(()) => Json(json!({ "logged_out": true })).into_response(),
        Err(e) => store_error(e),
    }
}

async fn revoke_user(
    State(app): State<App>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Response {
    // 403 `insufficient_scope` for anyone but the admin.
    if let Err(refusal) = token.require_scope("admin") {
        return refusal.into_response();
    }
    match app.revocations.revoke_user(&user).await {
        Ok(()) => Json(json!({ "revoked": user })).into_response(),
        Err(e) => store_error(e),
    }
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
        .unwrap_or(3003);
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    // The development secret is public (it is in this file): anyone could mint tokens, so
    // the server then listens on loopback only.
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let secret = match std::env::var("JWT_SECRET") {
        Ok(secret) if !secret.is_empty() => secret,
        _ => {
            if host != "127.0.0.1" && host != "localhost" && host != "::1" {
                return Err(format!(
                    "JWT_SECRET is unset: the development secret is public, so the server listens on loopback only, not on HOST={host}"
                )
                .into());
            }
            tracing::warn!(
                "JWT_SECRET is unset: using a development secret (loopback only); never do this in production"
            );
            DEVELOPMENT_SECRET.to_owned()
        }
    };
    let app = app(redis_url.as_deref(), secret.as_bytes()).await?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    tracing::info!(
        "listening on http://{} ({} revocations); try: curl -s localhost:{port}/login -H 'content-type: application/json' -d '{{\"user\":\"alice\"}}'",
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
