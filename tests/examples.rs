//! The examples do what their docs say: 100 quick requests get 200 and the 101st gets 429,
//! on one instance in memory, and spread over two instances that share one Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly

#[path = "../examples/ratelimit.rs"]
mod axum_example;
#[path = "../examples/hyper_ratelimit.rs"]
mod hyper_example;

use std::net::SocketAddr;

use parapet_testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request on a fresh connection; returns the status and the head.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

async fn axum_instance(redis_url: Option<&str>) -> SocketAddr {
    let app = axum_example::app(redis_url).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

async fn hyper_instance(redis_url: Option<&str>) -> SocketAddr {
    let layer = hyper_example::layer(redis_url).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hyper_example::serve(listener, layer));
    addr
}

/// 100 requests round-robin over `instances` get 200, the 101st 429 with Retry-After.
async fn hundred_then_429(instances: &[SocketAddr]) {
    for i in 0..100 {
        let (status, head) = get(instances[i % instances.len()], "/api/products").await;
        assert_eq!(status, 200, "request {i}: {head}");
    }
    let (status, head) = get(instances[0], "/api/products").await;
    assert_eq!(status, 429, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(head.contains("\"minute\";r=0"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_in_memory() {
    let addr = axum_instance(None).await;
    hundred_then_429(&[addr]).await;
    // /health sits outside route_layer.
    assert_eq!(get(addr, "/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_two_instances_one_redis() {
    let redis = RedisServer::start();
    let a = axum_instance(Some(&redis.url())).await;
    let b = axum_instance(Some(&redis.url())).await;
    hundred_then_429(&[a, b]).await;
    assert_eq!(
        get(b, "/api/products").await.0,
        429,
        "the other instance refuses too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_example_in_memory_and_on_redis() {
    let addr = hyper_instance(None).await;
    hundred_then_429(&[addr]).await;
    assert_eq!(
        get(addr, "/elsewhere").await.0,
        404,
        "unlimited paths reach the handler"
    );

    let redis = RedisServer::start();
    let a = hyper_instance(Some(&redis.url())).await;
    let b = hyper_instance(Some(&redis.url())).await;
    hundred_then_429(&[a, b]).await;
}
