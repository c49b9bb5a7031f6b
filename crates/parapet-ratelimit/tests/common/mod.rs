//! Shared helpers of the integration tests.
#![allow(dead_code, clippy::unwrap_used)] // test helpers fail loudly

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use parapet_core::RedisHandle;
use parapet_ratelimit::{Policy, PolicySet, Quota, RateLimit, RateLimitLayer, ResponseBody};
use tower::{Layer, Service, ServiceExt, service_fn};

pub type Hello = tower::util::ServiceFn<
    fn(Request<()>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
>;

fn hello(_: Request<()>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello")))))
}

/// The layer over a hello-world service.
pub fn service(layer: &RateLimitLayer) -> RateLimit<Hello> {
    layer.layer(service_fn(hello as fn(_) -> _))
}

/// A request from `ip`.
pub fn request_from(ip: &str) -> Request<()> {
    let mut request = Request::new(());
    let addr: SocketAddr = format!("{ip}:40000")
        .parse()
        .unwrap_or_else(|_| format!("[{ip}]:40000").parse().unwrap());
    request.extensions_mut().insert(addr);
    request
}

/// Sends one request.
pub async fn send(
    service: &mut RateLimit<Hello>,
    request: Request<()>,
) -> Response<ResponseBody<Full<Bytes>>> {
    service.ready().await.unwrap().call(request).await.unwrap()
}

/// Sends `n` requests at once, from 198.51.100.1, .2, …, each through its own service of
/// `layer`. On a current-thread runtime all are asked for before a Redis store's batcher
/// runs, so they make one call. The responses come in the order sent.
pub async fn send_together(
    layer: &RateLimitLayer,
    n: u8,
) -> Vec<Response<ResponseBody<Full<Bytes>>>> {
    let tasks: Vec<_> = (1..=n)
        .map(|i| {
            let mut svc = service(layer);
            let request = request_from(&format!("198.51.100.{i}"));
            tokio::spawn(async move { send(&mut svc, request).await })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    responses
}

/// Collects a body.
pub async fn body(response: Response<ResponseBody<Full<Bytes>>>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub fn set(policies: &[(&str, Quota)]) -> PolicySet {
    PolicySet::new(policies.iter().map(|(n, q)| Policy::new(*n, *q).unwrap())).unwrap()
}

pub async fn redis(url: String) -> RedisHandle {
    RedisHandle::builder(url).build().await.unwrap()
}

/// Waits until the layer's deny cache is confirmed in sync with the store (its change
/// announcements are heard), at most 5 s.
pub async fn in_sync(layer: &RateLimitLayer) {
    let started = std::time::Instant::now();
    while !layer.limiter().is_in_sync() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the fan-out never became current"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// A service that answers `status` on `path` and `200` elsewhere.
#[derive(Clone)]
pub struct StatusOn {
    pub path: &'static str,
    pub status: http::StatusCode,
}

impl tower::Service<Request<()>> for StatusOn {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let mut response = Response::new(Full::new(Bytes::new()));
        if request.uri().path() == self.path {
            *response.status_mut() = self.status;
        }
        std::future::ready(Ok(response))
    }
}

/// The status of a GET of `path` from 192.0.2.1 through `service`.
pub async fn status_of(service: &mut RateLimit<StatusOn>, path: &'static str) -> http::StatusCode {
    let mut request = Request::builder().uri(path).body(()).unwrap();
    request
        .extensions_mut()
        .insert("192.0.2.1:4000".parse::<SocketAddr>().unwrap());
    service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap()
        .status()
}
