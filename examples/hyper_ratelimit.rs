//! The same limit as `examples/ratelimit.rs` — 100 requests per minute per client IP on
//! `/api/products` — on plain hyper and tower, without axum.
//!
//! ```text
//! cargo run --release --example hyper_ratelimit     # PORT (3000), REDIS_URL as in ratelimit
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use parapet::core::RedisHandle;
use parapet::ratelimit::{Quota, RateLimitLayer, RedisStore};
use tower::ServiceBuilder;

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
    let products = parapet::ratelimit::PolicySet::from(parapet::ratelimit::Policy::new(
        "minute",
        Quota::per_minute(100),
    )?);
    let mut builder = RateLimitLayer::builder()
        .headers(parapet::ratelimit::HeaderStyle::Ietf)
        .resolver(move |head| (head.uri.path() == "/api/products").then(|| products.clone()));
    if let Some(url) = redis_url {
        builder = builder.store(RedisStore::new(RedisHandle::builder(url).build().await?));
    }
    Ok(builder.build()?)
}

/// Serves connections from `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    layer: RateLimitLayer,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        // The default key, `PeerIp`, reads the peer's `SocketAddr` from the extensions.
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert::<SocketAddr>(peer);
                request
            })
            .layer(layer.clone())
            .service_fn(handler);
        tokio::spawn(async move {
            let served = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
            if let Err(error) = served {
                eprintln!("connection error: {error}");
            }
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, layer(redis_url.as_deref()).await?).await?;
    Ok(())
}
