//! gRPC calls are refused in gRPC's terms; other requests through the same layer are not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use http::{Method, Request, StatusCode};
use parapet_core::ManualClock;
use parapet_ratelimit::{HeaderStyle, Quota, RateLimitLayer, RedisStore};
use parapet_testkit::RedisServer;

use common::{body, redis, request_from, send, service};

fn grpc_call(ip: &str) -> Request<()> {
    let mut request = request_from(ip);
    *request.method_mut() = Method::POST;
    request
        .headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    request
}

async fn check(layer: RateLimitLayer, what: &str) {
    let mut svc = service(&layer);
    assert_eq!(send(&mut svc, grpc_call("192.0.2.7")).await.status(), 200);
    let refused = send(&mut svc, grpc_call("192.0.2.7")).await;
    assert_eq!(
        refused.status(),
        StatusCode::OK,
        "{what}: gRPC refusals are HTTP 200"
    );
    let headers = refused.headers().clone();
    assert_eq!(headers["grpc-status"], "8", "{what}: RESOURCE_EXHAUSTED");
    assert_eq!(headers["content-type"], "application/grpc");
    let pushback: u64 = headers["grpc-retry-pushback-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1_000..=60_000).contains(&pushback), "{what}: {pushback}");
    assert_eq!(
        headers["retry-after"].to_str().unwrap(),
        (pushback / 1000).to_string()
    );
    assert!(
        headers.contains_key("ratelimit"),
        "{what}: the rate-limit fields stay"
    );
    assert_eq!(body(refused).await, "", "{what}: Trailers-Only");

    // A plain request through the same layer is answered as before.
    assert_eq!(
        send(&mut svc, request_from("192.0.2.8")).await.status(),
        200
    );
    let refused = send(&mut svc, request_from("192.0.2.8")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(refused.headers().get("grpc-status").is_none());
}

#[tokio::test]
async fn refused_grpc_calls_get_resource_exhausted_in_memory() {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .headers(HeaderStyle::Ietf)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    check(layer, "memory").await;
}

/// On Redis the decision arrives later (the response future's path).
#[tokio::test]
async fn refused_grpc_calls_get_resource_exhausted_on_redis() {
    let server = RedisServer::shared();
    let store = RedisStore::new(redis(server.url()).await).unwrap();
    let layer = RateLimitLayer::builder()
        .policy("grpc-minute", Quota::per_minute(1))
        .headers(HeaderStyle::Ietf)
        .store(store)
        .build()
        .unwrap();
    check(layer, "redis").await;
}
