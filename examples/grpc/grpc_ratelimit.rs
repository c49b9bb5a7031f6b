//! A gRPC service (the standard `grpc.health.v1.Health`) behind the rate limiter: a client
//! over its quota gets `RESOURCE_EXHAUSTED` with a retry delay, not an HTTP 429 it cannot
//! read.
//!
//! ```text
//! cargo run --release --example grpc_ratelimit                 # PORT (50051), REDIS_URL
//! grpcurl -plaintext localhost:50051 grpc.health.v1.Health/Check   # 5 a minute, then:
//! # ERROR: Code: ResourceExhausted  Message: rate limited
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HOST`, `PORT` | where to listen (`0.0.0.0` for every interface) | `127.0.0.1`, 50051 |
//! | `REDIS_URL` | share the limit through this Redis | in-memory |
//! | `RUST_LOG` | log filter | `info` |
//!
//! A refused call is a Trailers-Only response: `grpc-status: 8`, `grpc-message: rate
//! limited`, `grpc-retry-pushback-ms` (the delay gRPC clients honour before retrying),
//! `retry-after` and the `ratelimit` fields as metadata. The key is the client's IP (tonic's
//! `TcpConnectInfo`, feature `tonic`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::error::Error;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower_parapet::core::RedisHandle;
use tower_parapet::ratelimit::{HeaderStyle, Quota, RateLimitLayer, RedisStore};

/// Five calls a minute per client IP, in memory or on Redis.
pub async fn limit(redis_url: Option<&str>) -> Result<RateLimitLayer, Box<dyn Error>> {
    let mut builder = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(5))
        .headers(HeaderStyle::Ietf);
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

/// Serves the health service behind `limit` on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    limit: RateLimitLayer,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    Server::builder()
        .layer(limit)
        .add_service(health)
        .serve_with_incoming(TcpIncoming::from(listener))
        .await?;
    Ok(())
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
        .unwrap_or(50051);
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let limit = limit(redis_url.as_deref()).await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let listener = TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    tracing::info!(
        "gRPC health service on {} ({} limits): grpcurl -plaintext localhost:{port} grpc.health.v1.Health/Check",
        listener.local_addr()?,
        if redis_url.is_some() {
            "redis"
        } else {
            "in-memory"
        },
    );
    serve(listener, limit)
        .await
        .map_err(|e| e as Box<dyn Error>)
}
