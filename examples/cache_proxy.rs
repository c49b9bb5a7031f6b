//! A caching reverse proxy for any HTTP origin: every method, path, query and header (but
//! the hop-by-hop ones) goes to `UPSTREAM`, and the answers are cached as a plain RFC 9111
//! shared cache with parapet's defaults — no extra TTLs, no overrides.
//!
//! ```text
//! UPSTREAM=http://127.0.0.1:8080 cargo run --release --example cache_proxy   # on :3005
//! curl -si localhost:3005/some/page | grep -i cache-status
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `UPSTREAM` | the origin (`http://host:port`) | `http://127.0.0.1:8080` |
//! | `HOST`, `PORT` | where to listen (`0.0.0.0` for every interface) | `127.0.0.1`, 3005 |
//! | `REDIS_URL` | keep responses in this Redis, shared by every proxy instance, with memory in front | in-memory |
//! | `RUST_LOG` | log filter | `info` |
//!
//! What the origin says is what happens: `Cache-Control: max-age=60` is cached for a
//! minute, `private` or `Set-Cookie` never, `Vary` is honoured, `POST` invalidates, clients'
//! `If-None-Match` get `304` from the cache, and an origin that is down is answered `502`.
//! An origin's response head may carry up to 1,000 fields (hyper's client reads 100 by
//! default); past that, or when the head cannot be read at all, the client gets `502` and
//! the log says why.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::convert::Infallible;
use std::error::Error;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderName};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceBuilder;
use tower_parapet::cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};
use tower_parapet::core::RedisHandle;

// The examples' HTTP server: header-read timeout, connection limit, graceful shutdown.
#[path = "support/server.rs"]
#[allow(dead_code, clippy::duplicate_mod)] // also included by the tests beside each example
mod server;

type Body = Either<Incoming, Full<Bytes>>;

/// Fields that concern one connection only (RFC 9110 §7.6.1): never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The most fields an origin's response head may carry (hyper's client default is 100,
/// fewer than some frameworks and CDNs send).
pub const MAX_UPSTREAM_FIELDS: usize = 1000;

/// Forwards one request to `upstream`.
async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: Uri,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut parts = upstream.into_parts();
    parts.path_and_query = path.parse().ok();
    *request.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
    strip_hop_by_hop(request.headers_mut());
    match client.request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(error) => {
            // hyper-util's error says only which step failed; its sources say why.
            let mut why = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                why.push_str(": ");
                why.push_str(&cause.to_string());
                source = cause.source();
            }
            tracing::warn!("upstream: {why}");
            let body: &'static [u8] = if error.is_connect() {
                b"the upstream server cannot be reached\n"
            } else {
                b"the upstream server's response could not be read\n"
            };
            let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(body))));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(response)
        }
    }
}

/// The cache: in memory, or on Redis when `redis_url` is given.
pub async fn cache(redis_url: Option<&str>) -> Result<CacheLayer, Box<dyn Error>> {
    let mut builder = CacheLayer::builder();
    if let Some(url) = redis_url {
        let redis = RedisHandle::builder(url).build().await?;
        redis
            .ping()
            .await
            .map_err(|e| format!("cannot reach Redis at {}: {e}", redis.target()))?;
        // Hits from this process's memory; Redis shared by every instance, and removals
        // heard by all of them.
        builder = builder.store(TieredStore::new(
            MemoryStore::new(64 << 20),
            RedisStore::new(redis)?,
        ));
    }
    Ok(builder.build()?)
}

/// Serves connections from `listener`, forwarding to `upstream` through `cache`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    upstream: Uri,
    cache: CacheLayer,
) -> std::io::Result<()> {
    let client = Client::builder(TokioExecutor::new())
        .http1_max_headers(MAX_UPSTREAM_FIELDS)
        .build_http::<Incoming>();
    let service = ServiceBuilder::new()
        .layer(cache)
        .service(tower::service_fn(move |request| {
            forward(client.clone(), upstream.clone(), request)
        }));
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
    let var = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let port: u16 = var("PORT").and_then(|p| p.parse().ok()).unwrap_or(3005);
    let upstream: Uri = var("UPSTREAM")
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned())
        .parse()
        .map_err(|e| format!("UPSTREAM is not a URL: {e}"))?;
    if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
        return Err(format!("UPSTREAM must be http://host[:port], not {upstream}").into());
    }
    let cache = cache(var("REDIS_URL").as_deref()).await?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    tracing::info!(
        "caching proxy on http://{} for {upstream}",
        listener.local_addr()?
    );
    serve(listener, upstream, cache).await?;
    Ok(())
}
