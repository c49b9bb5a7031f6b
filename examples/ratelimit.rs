//! An axum server whose `GET /api/products` is limited to 100 requests per minute per
//! client IP; `GET /health` is not limited.
//!
//! ```text
//! cargo run --release --example ratelimit                      # in-memory, port 3000
//! REDIS_URL=redis://127.0.0.1:6379 PORT=3001 cargo run --release --example ratelimit
//! ```
//!
//! With `REDIS_URL` set, every instance pointed at the same Redis shares the limit: 100
//! requests spread over two instances get 200, the 101st gets 429.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::error::Error;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use parapet::core::RedisHandle;
use parapet::ratelimit::key::PeerIp;
use parapet::ratelimit::{HeaderStyle, Quota, RateLimitLayer, RedisStore};

/// The app: in-memory limits without `redis_url`, shared Redis limits with it.
pub async fn app(redis_url: Option<&str>) -> Result<Router, Box<dyn Error>> {
    let mut limit = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(100))
        // RateLimit-Policy / RateLimit fields on every response (off by default).
        .headers(HeaderStyle::Ietf)
        // Clients connect directly here. Behind a load balancer, use
        // `ClientIp::trusted_proxies(["10.0.0.0/8"])?.peer(...)` instead.
        .key(PeerIp::from_extension::<ConnectInfo<SocketAddr>>());
    if let Some(url) = redis_url {
        let redis = RedisHandle::builder(url).build().await?;
        limit = limit.store(RedisStore::new(redis));
    }
    Ok(Router::new()
        .route("/api/products", get(products))
        .route_layer(limit.build()?)
        .route("/health", get(|| async { "ok" })))
}

async fn products() -> &'static str {
    r#"[{"id":1,"name":"parapet"}]"#
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let app = app(redis_url.as_deref()).await?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    println!(
        "listening on http://{} ({} store); try: curl -i localhost:{port}/api/products",
        listener.local_addr()?,
        if redis_url.is_some() {
            "redis"
        } else {
            "in-memory"
        }
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
