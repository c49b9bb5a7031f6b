//! An axum server whose slow `GET /api/products` (about 200 ms) is cached for 30 seconds by
//! an RFC 9111 shared cache; `GET /health` passes through.
//!
//! ```text
//! cargo run --release --example cache                          # in-memory, port 3001
//! curl -si localhost:3001/api/products | grep -i -E 'cache-status|age|etag'
//! curl -si localhost:3001/api/products -H 'if-none-match: "products-v1"'   # 304 from the cache
//! REDIS_URL=redis://127.0.0.1:6379 PORT=3001 cargo run --release --example cache
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HOST`, `PORT` | where to listen (`0.0.0.0` for every interface) | `127.0.0.1`, 3001 |
//! | `REDIS_URL` | keep responses in this Redis, shared by every instance, with this process's memory in front (checked at start) | in-memory |
//! | `RUST_LOG` | log filter | `info` |
//!
//! The first request is a miss (`Cache-Status: parapet; fwd=uri-miss; fwd-status=200;
//! stored`) and takes the handler's 200 ms; the next ones for 30 s are hits
//! (`parapet; hit; ttl=29`) answered in microseconds, with `Age`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::error::Error;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, ETAG};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_parapet::cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};
use tower_parapet::core::RedisHandle;

// The examples' HTTP server: header-read timeout, connection limit, graceful shutdown.
#[path = "support/server.rs"]
#[allow(dead_code, clippy::duplicate_mod)] // also included by the tests beside each example
mod server;

/// The app: the cache in memory without a Redis URL, on Redis with one.
pub async fn app(redis_url: Option<&str>) -> Result<Router, Box<dyn Error>> {
    let mut cache = CacheLayer::builder();
    if let Some(url) = redis_url {
        let redis = RedisHandle::builder(url).build().await?;
        redis
            .ping()
            .await
            .map_err(|e| format!("cannot reach Redis at {}: {e}", redis.target()))?;
        cache = cache.store(TieredStore::new(
            // Hits from this process's memory; Redis shared by every instance, and
            // removals heard by all of them.
            MemoryStore::new(64 << 20),
            RedisStore::new(redis)?,
        ));
    }
    Ok(Router::new()
        .route("/api/products", get(products))
        .route_layer(cache.build()?)
        .route("/health", get(|| async { "ok" })))
}

async fn products() -> impl IntoResponse {
    // A slow database query.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (
        [
            (CACHE_CONTROL, "public, max-age=30"),
            (ETAG, "\"products-v1\""),
        ],
        r#"[{"id":1,"name":"parapet"}]"#,
    )
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
        .unwrap_or(3001);
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let app = app(redis_url.as_deref()).await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    tracing::info!(
        "listening on http://{} ({} cache); try: curl -si localhost:{port}/api/products",
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
