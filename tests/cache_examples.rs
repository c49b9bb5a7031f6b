//! The cache examples do what their docs say: the slow products endpoint is a miss then a
//! hit (in memory, and shared by two instances on one Redis), and the proxy caches what its
//! origin allows and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly

#[path = "../examples/cache.rs"]
mod cache_example;
#[path = "../examples/cache_proxy.rs"]
mod proxy_example;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use parapet_testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request on a fresh connection; returns the status and the head + body.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    (response[9..12].parse().unwrap(), response)
}

fn cache_status(response: &str) -> &str {
    response
        .lines()
        .find_map(|l| l.strip_prefix("cache-status: "))
        .unwrap_or("")
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn cache_example_in_memory_misses_then_hits() {
    let addr = serve(cache_example::app(None).await.unwrap()).await;
    let (status, first) = request(addr, "GET", "/api/products", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        cache_status(&first),
        "parapet; fwd=uri-miss; fwd-status=200; stored"
    );
    let (_, second) = request(addr, "GET", "/api/products", &[]).await;
    assert!(
        cache_status(&second).starts_with("parapet; hit; ttl="),
        "{second}"
    );
    assert!(second.contains("\r\nage: "), "{second}");
    assert!(second.ends_with(r#"[{"id":1,"name":"parapet"}]"#));
    let (status, not_modified) = request(
        addr,
        "GET",
        "/api/products",
        &["If-None-Match: \"products-v1\""],
    )
    .await;
    assert_eq!(status, 304, "{not_modified}");
    let (_, health) = request(addr, "GET", "/health", &[]).await;
    assert_eq!(cache_status(&health), "", "not under the cache");
}

#[tokio::test]
async fn cache_example_two_instances_share_one_redis() {
    let server = RedisServer::start();
    let a = serve(cache_example::app(Some(&server.url())).await.unwrap()).await;
    let b = serve(cache_example::app(Some(&server.url())).await.unwrap()).await;
    let (_, first) = request(a, "GET", "/api/products", &[]).await;
    assert!(cache_status(&first).contains("fwd=uri-miss"));
    let (_, second) = request(b, "GET", "/api/products", &[]).await;
    assert!(
        cache_status(&second).starts_with("parapet; hit"),
        "{second}"
    );
}

#[tokio::test]
async fn cache_example_says_when_redis_is_unreachable() {
    let error = cache_example::app(Some("redis://127.0.0.1:1"))
        .await
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{error}"
    );
}

/// An origin that counts its calls: `/page` is cacheable, `/me` private.
async fn origin(calls: Arc<AtomicUsize>) -> SocketAddr {
    let counted = |calls: Arc<AtomicUsize>, cache_control: &'static str| {
        move || {
            let calls = Arc::clone(&calls);
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let mut headers = HeaderMap::new();
                headers.insert("cache-control", cache_control.parse().unwrap());
                (headers, format!("call {n}"))
            }
        }
    };
    let app = Router::new()
        .route(
            "/page",
            get(counted(Arc::clone(&calls), "public, max-age=60")).post(|| async { "changed" }),
        )
        .route("/me", get(counted(calls, "private, max-age=60")));
    serve(app).await
}

#[tokio::test]
async fn cache_proxy_caches_what_the_origin_allows() {
    let calls = Arc::new(AtomicUsize::new(0));
    let upstream = origin(Arc::clone(&calls)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let cache = proxy_example::cache(None).await.unwrap();
    let uri = format!("http://{upstream}").parse().unwrap();
    tokio::spawn(proxy_example::serve(listener, uri, cache));

    let (status, first) = request(proxy, "GET", "/page?x=1", &[]).await;
    assert_eq!(status, 200);
    assert!(first.ends_with("call 0"));
    let (_, second) = request(proxy, "GET", "/page?x=1", &[]).await;
    assert!(
        cache_status(&second).starts_with("parapet; hit"),
        "{second}"
    );
    assert!(second.ends_with("call 0"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    request(proxy, "GET", "/me", &[]).await;
    let (_, me) = request(proxy, "GET", "/me", &[]).await;
    assert!(cache_status(&me).contains("detail=private"), "{me}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let (status, _) = request(proxy, "POST", "/page?x=1", &[]).await;
    assert_eq!(status, 200);
    let (_, after) = request(proxy, "GET", "/page?x=1", &[]).await;
    assert!(
        cache_status(&after).contains("fwd=uri-miss"),
        "POST invalidated it: {after}"
    );
}

#[tokio::test]
async fn cache_proxy_answers_502_when_the_origin_is_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let cache = proxy_example::cache(None).await.unwrap();
    tokio::spawn(proxy_example::serve(
        listener,
        "http://127.0.0.1:1".parse().unwrap(),
        cache,
    ));
    let (status, _) = request(proxy, "GET", "/", &[]).await;
    assert_eq!(status, 502);
}

/// An origin whose cacheable `/fields/{n}` answers with `n` values of one field.
async fn many_fields_origin() -> SocketAddr {
    let app = Router::new().route(
        "/fields/{n}",
        get(
            |axum::extract::Path(n): axum::extract::Path<usize>| async move {
                let mut headers = HeaderMap::new();
                headers.insert("cache-control", "public, max-age=60".parse().unwrap());
                for i in 0..n {
                    headers.append("x-field", i.to_string().parse().unwrap());
                }
                (headers, "fields")
            },
        ),
    );
    serve(app).await
}

#[tokio::test]
async fn cache_proxy_carries_a_long_response_head_and_says_why_it_cannot() {
    let upstream = many_fields_origin().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let cache = proxy_example::cache(None).await.unwrap();
    let uri = format!("http://{upstream}").parse().unwrap();
    tokio::spawn(proxy_example::serve(listener, uri, cache));
    let count = |response: &str| {
        response
            .lines()
            .filter(|l| l.starts_with("x-field: "))
            .count()
    };

    // More fields than hyper's client reads by default (100), fewer than the proxy's limit:
    // forwarded whole, then served whole from the cache.
    let (status, first) = request(proxy, "GET", "/fields/300", &[]).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(count(&first), 300);
    let (_, second) = request(proxy, "GET", "/fields/300", &[]).await;
    assert!(
        cache_status(&second).starts_with("parapet; hit"),
        "{second}"
    );
    assert_eq!(count(&second), 300);

    // Past the limit: 502, saying the answer could not be read (the origin is up).
    let too_many = proxy_example::MAX_UPSTREAM_FIELDS + 100;
    let (status, answer) = request(proxy, "GET", &format!("/fields/{too_many}"), &[]).await;
    assert_eq!(status, 502);
    assert!(
        answer.ends_with("the upstream server's response could not be read\n"),
        "{answer}"
    );
}
