//! An origin the tests control, and a client that reads whole responses.

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use parapet_cache::{Cache, CacheLayer, CacheLayerBuilder, MemoryStore, RedisStore, TieredStore};
use parapet_core::ManualClock;
use parapet_core::{KeyPrefix, RedisHandle};
use parapet_testkit::{RedisCluster, RedisServer};
use tower::{Layer, ServiceExt};

type Respond = dyn Fn(&Request<Full<Bytes>>) -> Response<Full<Bytes>> + Send + Sync;

/// What the origin answers, how often it was called, and what it saw.
#[derive(Clone)]
pub struct Origin {
    respond: Arc<Mutex<Arc<Respond>>>,
    pub calls: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<HeaderMap>>>,
    pub delay: Arc<Mutex<Duration>>,
}

impl Origin {
    pub fn new() -> Self {
        Self {
            respond: Arc::new(Mutex::new(Arc::new(|_| {
                Response::new(Full::new(Bytes::new()))
            }))),
            calls: Arc::default(),
            seen: Arc::default(),
            delay: Arc::default(),
        }
    }

    /// Answers every request with `status`, these headers and `body`.
    pub fn answer(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let body = Bytes::from(body.to_owned());
        self.respond_with(move |_| response(status, &headers, body.clone()));
    }

    pub fn respond_with(
        &self,
        f: impl Fn(&Request<Full<Bytes>>) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) {
        *self.respond.lock().unwrap() = Arc::new(f);
    }

    pub fn slow(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn last_seen(&self) -> HeaderMap {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

pub fn response(status: u16, headers: &[(String, String)], body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (n, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

pub type Svc = Cache<
    tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>,
>;

/// Where a test's cache keeps its responses. Redis servers are started once per test
/// binary and shared; each cache gets its own key prefix.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Redis,
    Cluster,
    /// Memory in front of the shared standalone Redis.
    Tiered,
}

static PREFIX: AtomicUsize = AtomicUsize::new(0);

/// A Redis store on `backend` under a prefix of its own, if the backend is Redis.
pub async fn redis_store(backend: Backend) -> Option<RedisStore> {
    let handle = match backend {
        Backend::Memory => return None,
        Backend::Redis | Backend::Tiered => {
            RedisHandle::builder(RedisServer::shared().url().as_str())
                .build()
                .await
                .unwrap()
        }
        Backend::Cluster => RedisHandle::cluster(RedisCluster::shared().urls())
            .build()
            .await
            .unwrap(),
    };
    let prefix = format!("t{}", PREFIX.fetch_add(1, Ordering::SeqCst));
    Some(
        RedisStore::new(handle)
            .unwrap()
            .prefix(KeyPrefix::new(prefix).unwrap()),
    )
}

/// The layer over `origin` on `backend`, built with `build` from a builder on a manual clock.
pub async fn cache(
    backend: Backend,
    origin: &Origin,
    build: impl FnOnce(CacheLayerBuilder) -> CacheLayerBuilder,
) -> (Svc, CacheLayer, ManualClock) {
    let clock = ManualClock::new();
    let mut builder = CacheLayer::builder().clock(clock.clone());
    if let Some(store) = redis_store(backend).await {
        builder = match backend {
            Backend::Tiered => builder.store(TieredStore::new(MemoryStore::new(16 << 20), store)),
            _ => builder.store(store),
        };
    }
    let (svc, layer) = cache_over(origin, build(builder).build().unwrap());
    (svc, layer, clock)
}

/// The layer on `store` over `origin`, on a manual clock.
pub async fn cache_with_store(
    origin: &Origin,
    store: RedisStore,
) -> (Svc, CacheLayer, ManualClock) {
    let clock = ManualClock::new();
    let layer = CacheLayer::builder()
        .clock(clock.clone())
        .store(store)
        .build()
        .unwrap();
    let (svc, layer) = cache_over(origin, layer);
    (svc, layer, clock)
}

/// `layer` over `origin`.
pub fn cache_over(origin: &Origin, layer: CacheLayer) -> (Svc, CacheLayer) {
    let o = origin.clone();
    let inner = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let o = o.clone();
        async move {
            o.calls.fetch_add(1, Ordering::SeqCst);
            o.seen.lock().unwrap().push(request.headers().clone());
            let delay = *o.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let respond = Arc::clone(&o.respond.lock().unwrap());
            Ok::<_, Infallible>(respond(&request))
        }
    });
    (
        layer.layer(tower::util::BoxCloneSyncService::new(inner)),
        layer,
    )
}

/// A whole response.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn cache_status(&self) -> String {
        self.headers
            .get_all("cache-status")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn is_hit(&self) -> bool {
        self.cache_status().starts_with("parapet; hit")
    }
}

/// A GET as an HTTP/1.1 client sends it: with `Host` from an absolute target.
pub fn get(uri: &str) -> http::request::Builder {
    with_host(Request::get(uri), uri)
}

/// `Host` from `uri`'s authority, as every HTTP/1.1 client sends it (RFC 9112 §3.2).
pub fn with_host(request: http::request::Builder, uri: &str) -> http::request::Builder {
    match uri
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().cloned())
    {
        Some(authority) => request.header("host", authority.as_str()),
        None => request,
    }
}

pub async fn send(service: &Svc, request: http::request::Builder) -> Got {
    let request = request.body(Full::new(Bytes::new())).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub async fn fetch(service: &Svc, uri: &str) -> Got {
    send(service, get(uri)).await
}

/// Resident bytes of this process, from `/proc/self/statm` (Linux).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
