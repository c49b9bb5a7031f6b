//! An axum server whose `GET /api/products` is limited to 100 requests per minute per
//! client IP; `GET /health` is not limited.
//!
//! ```text
//! cargo run --release --example ratelimit                      # in-memory, port 3000
//! REDIS_URL=redis://127.0.0.1:6379 PORT=3100 cargo run --release --example ratelimit
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HOST`, `PORT` | where to listen (`0.0.0.0` for every interface) | `127.0.0.1`, 3000 |
//! | `LIMIT` | requests per minute per client (1 to 10,000,000; a sliding window logs each request, so at most 10,000) | 100 |
//! | `ALGORITHM` | how the 100 per minute are counted: `gcra` (a burst of 100, then one every 600 ms), `sliding` (never more than 100 in any 60 s) or `fixed` (100 per minute of the clock) | `gcra` |
//! | `REDIS_URL` | share limits through this Redis (it must be running: the example checks at start and exits if it cannot reach it) | in-memory |
//! | `TRUSTED_PROXIES` | comma-separated CIDRs of your load balancers / proxies: the client is then read from `FORWARDED_HEADER`, right to left | clients connect directly |
//! | `FORWARDED_HEADER` | `x-forwarded-for`, `forwarded`, `x-real-ip`, `cf-connecting-ip`, `true-client-ip` or `fly-client-ip` | `x-forwarded-for` |
//! | `KEY_SECRET` | at least 16 bytes: Redis keys hold an HMAC of the client address instead of a plain SHA-256 | unset |
//! | `RUST_LOG` | log filter | `info` |
//!
//! With `REDIS_URL` set, every instance pointed at the same Redis shares the limit: 100
//! requests spread over two instances get 200, the 101st gets 429.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::error::Error;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use axum::Router;
use axum::routing::get;
use tower_parapet::core::{ClientIp, ForwardedHeader, KeySecret, RedisHandle};
use tower_parapet::ratelimit::key::PeerIp;
use tower_parapet::ratelimit::{Algorithm, HeaderStyle, Quota, RateLimitLayer, RedisStore};

// The examples' HTTP server: header-read timeout, connection limit, graceful shutdown.
#[path = "support/server.rs"]
#[allow(dead_code, clippy::duplicate_mod)] // also included by the tests beside each example
mod server;

/// Everything the example reads from its environment.
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `TRUSTED_PROXIES`, split on commas.
    pub trusted_proxies: Vec<String>,
    /// `FORWARDED_HEADER`.
    pub forwarded_header: Option<String>,
    /// `KEY_SECRET`.
    pub key_secret: Option<String>,
    /// `ALGORITHM`.
    pub algorithm: Option<String>,
    /// `LIMIT`.
    pub limit: Option<String>,
}

impl Config {
    /// Reads the environment; empty variables count as unset.
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        Self {
            redis_url: var("REDIS_URL"),
            trusted_proxies: var("TRUSTED_PROXIES")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default(),
            forwarded_header: var("FORWARDED_HEADER"),
            key_secret: var("KEY_SECRET"),
            algorithm: var("ALGORITHM"),
            limit: var("LIMIT"),
        }
    }
}

/// The app: in-memory limits without a Redis URL, shared Redis limits with one.
pub async fn app(config: &Config) -> Result<Router, Box<dyn Error>> {
    let algorithm: Algorithm = match &config.algorithm {
        None => Algorithm::Gcra,
        Some(name) => name
            .parse()
            .map_err(|e| format!("ALGORITHM={name:?}: {e}"))?,
    };
    let per_minute: u32 = match &config.limit {
        None => 100,
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=10_000_000).contains(n))
            .ok_or_else(|| format!("LIMIT={text:?}: a whole number from 1 to 10,000,000"))?,
    };
    let mut limit = RateLimitLayer::builder()
        .policy(
            "minute",
            Quota::per_minute(per_minute).with_algorithm(algorithm),
        )
        // RateLimit-Policy / RateLimit fields on every response (off by default).
        .headers(HeaderStyle::Ietf);
    if config.trusted_proxies.is_empty() {
        if config.forwarded_header.is_some() {
            tracing::warn!("FORWARDED_HEADER is ignored without TRUSTED_PROXIES");
        }
        // Clients connect directly: the TCP peer (axum's ConnectInfo) is the client.
        limit = limit.key(PeerIp::new());
    } else {
        let header = match &config.forwarded_header {
            None => ForwardedHeader::XForwardedFor,
            Some(name) => ForwardedHeader::from_name(name)
                .ok_or_else(|| format!("FORWARDED_HEADER={name:?} is not a known header"))?,
        };
        limit = limit.key(ClientIp::trusted_proxies(&config.trusted_proxies)?.header(header));
    }
    // Checked even when unused, so a bad secret is found before it matters.
    let key_secret = config
        .key_secret
        .as_deref()
        .map(KeySecret::new)
        .transpose()?;
    if key_secret.is_some() && config.redis_url.is_none() {
        tracing::warn!("KEY_SECRET is ignored without REDIS_URL (in-memory keys are not stored)");
    }
    if let Some(url) = &config.redis_url {
        let redis = RedisHandle::builder(url.as_str()).build().await?;
        redis
            .ping()
            .await
            .map_err(|e| format!("cannot reach Redis at {}: {e}", redis.target()))?;
        let mut store = RedisStore::new(redis)?;
        if let Some(secret) = key_secret {
            store = store.key_secret(secret);
        }
        limit = limit.store(store);
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
        .unwrap_or(3000);
    let config = Config::from_env();
    let app = app(&config).await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    tracing::info!(
        "listening on http://{} ({} store, {}, {}); try: curl -i localhost:{port}/api/products",
        listener.local_addr()?,
        config.algorithm.as_deref().unwrap_or("gcra"),
        if config.redis_url.is_some() {
            "redis"
        } else {
            "in-memory"
        },
        if config.trusted_proxies.is_empty() {
            "clients connect directly".to_owned()
        } else {
            format!("behind proxies {:?}", config.trusted_proxies)
        }
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
