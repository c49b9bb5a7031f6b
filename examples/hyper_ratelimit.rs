//! The same limit as `examples/ratelimit.rs` — 100 requests per minute per client IP on
//! `/api/products` — on plain hyper and tower, without axum.
//!
//! ```text
//! cargo run --release --example hyper_ratelimit     # HOST (127.0.0.1), PORT (3004), REDIS_URL, RUST_LOG as in ratelimit
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::convert::Infallible;
use std::error::Error;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tower::ServiceBuilder;
use tower_parapet::core::RedisHandle;
use tower_parapet::ratelimit::{Quota, RateLimitLayer, RedisStore};

// The examples' HTTP server: header-read timeout, connection limit, graceful shutdown.
#[path = "support/server.rs"]
#[allow(dead_code, clippy::duplicate_mod)] // also included by the tests beside each example
mod server;

async fn handler(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if request.uri().path() == "/api/products" {
        Response::new(Full::new(Bytes::from_static(
            br#"[{"id":1,"name":"parapet"}]"#,
        )))
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not found")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    Ok(response)
}

/// The rate-limit layer: in memory, or on Redis when `redis_url` is given.
pub async fn layer(redis_url: Option<&str>) -> Result<RateLimitLayer, Box<dyn Error>> {
    let products = tower_parapet::ratelimit::PolicySet::from(
        tower_parapet::ratelimit::Policy::new("minute", Quota::per_minute(100))?,
    );
    let mut builder = RateLimitLayer::builder()
        .headers(tower_parapet::ratelimit::HeaderStyle::Ietf)
        .resolver(move |head| (head.uri.path() == "/api/products").then(|| products.clone()));
    if let Some(url) = redis_url {
        let redis = RedisHandle::builder(url).build().await?;
        redis
            .ping()
            .await
            .map_err(|e| format!("cannot reach Redis at {}: {e}", redis.target()))?;
        builder = builder.store(RedisStore::new(redis)?);
    }
    Ok(builder.build()?)
}

/// Serves connections from `listener` until the task is dropped, with the examples' server
/// limits (`support/server.rs`): header-read timeout, connection limit.
pub async fn serve(
    listener: tokio::net::TcpListener,
    layer: RateLimitLayer,
) -> std::io::Result<()> {
    // The default key, `PeerIp`, reads the peer's `SocketAddr`, which the server adds.
    let service = ServiceBuilder::new().layer(layer).service_fn(handler);
    server::serve(
        listener,
        service,
        server::Limits::default(),
        std::future::pending(),
    )
    .await
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
        .unwrap_or(3004);
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let layer = layer(redis_url.as_deref()).await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    serve(listener, layer).await?;
    Ok(())
}
