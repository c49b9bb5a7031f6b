//! Behind a load balancer, by default: the trusted proxies configured once (one `ClientIp`)
//! let the cache key the forwarded scheme, host and port instead of bypassing, so an
//! ALB-like balancer that sets `X-Forwarded-For`, `-Proto` and `-Port` on every request
//! leaves the cache working; a client's forged `X-Forwarded-Host` or `-Proto` reaches no
//! other client, through the balancer or around it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_parapet::cache::CacheLayer;
use tower_parapet::core::ClientIp;

const BALANCER: [u8; 4] = [10, 0, 0, 5];

/// Builds its links from the forwarding fields, as common frameworks do.
async fn catalog(headers: HeaderMap) -> impl IntoResponse {
    let field = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let proto = field("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = field("x-forwarded-host")
        .or_else(|| field("host"))
        .unwrap_or_default();
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        format!("{proto}://{host}/products/1"),
    )
}

fn app(calls: &Arc<AtomicUsize>) -> Router {
    let calls = Arc::clone(calls);
    let trusted = ClientIp::trusted_proxies(["10.0.0.0/8"]).unwrap();
    Router::new()
        .route(
            "/products",
            get(move |headers: HeaderMap| {
                calls.fetch_add(1, Ordering::SeqCst);
                catalog(headers)
            }),
        )
        .layer(CacheLayer::builder().client_ip(trusted).build().unwrap())
}

/// A request from `peer` with these fields.
async fn send(app: &Router, peer: [u8; 4], fields: &[(&str, &str)]) -> (String, String) {
    let mut request = Request::get("/products").header("host", "shop.example");
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((peer, 40_000))));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (String::from_utf8(body.to_vec()).unwrap(), status)
}

/// What an AWS ALB forwards for a client at `client` that sent `fields`: it appends the
/// client to `X-Forwarded-For`, sets `X-Forwarded-Proto` and `-Port` (replacing the
/// client's), and passes every other field on as sent.
async fn through_balancer(app: &Router, client: &str, fields: &[(&str, &str)]) -> (String, String) {
    let mut forwarded: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(n, _)| !["x-forwarded-proto", "x-forwarded-port"].contains(n))
        .copied()
        .collect();
    forwarded.extend([
        ("x-forwarded-for", client),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "443"),
    ]);
    send(app, BALANCER, &forwarded).await
}

#[tokio::test]
async fn behind_a_balancer_the_cache_caches_and_forged_fields_reach_no_one_else() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(&calls);

    // Caches with no setting beyond the trusted proxies.
    let (body, status) = through_balancer(&app, "203.0.113.7", &[]).await;
    assert_eq!(body, "https://shop.example/products/1");
    assert!(status.contains("stored"), "{status}");
    let (body, status) = through_balancer(&app, "198.51.100.9", &[]).await;
    assert_eq!(body, "https://shop.example/products/1");
    assert!(status.contains("hit"), "{status}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A forged X-Forwarded-Host passes the balancer: its answer is keyed apart.
    let evil = [("x-forwarded-host", "evil.example")];
    let (body, _) = through_balancer(&app, "192.0.2.66", &evil).await;
    assert_eq!(body, "https://evil.example/products/1");
    let (body, _) = through_balancer(&app, "192.0.2.66", &evil).await;
    assert_eq!(body, "https://evil.example/products/1");
    // A forged X-Forwarded-Proto is replaced by the balancer: the shared entry answers.
    let (body, status) =
        through_balancer(&app, "192.0.2.66", &[("x-forwarded-proto", "http")]).await;
    assert_eq!(body, "https://shop.example/products/1");
    assert!(status.contains("hit"), "{status}");
    // Everyone else still gets the right links.
    for client in ["203.0.113.7", "198.51.100.10"] {
        let (body, _) = through_balancer(&app, client, &[]).await;
        assert_eq!(body, "https://shop.example/products/1", "{client}");
    }

    // Around the balancer (a client reaching the service directly), the forwarding fields
    // are not trusted: such requests bypass the cache, neither poisoning nor served.
    for fields in [
        &[("x-forwarded-proto", "http")][..],
        &[("x-forwarded-host", "evil.example")][..],
        &[("forwarded", "proto=http;host=evil.example")][..],
    ] {
        let (_, status) = send(&app, [192, 0, 2, 66], fields).await;
        assert!(status.contains("bypass"), "{fields:?}: {status}");
    }
    let (body, _) = through_balancer(&app, "203.0.113.7", &[]).await;
    assert_eq!(body, "https://shop.example/products/1");
}

/// `Forwarded` (RFC 7239) from the balancer names each client in `for=`: only its `proto`
/// and `host` are keyed, so clients share entries.
#[tokio::test]
async fn forwarded_is_keyed_by_proto_and_host_not_by_client() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(&calls);
    for client in ["192.0.2.1", "192.0.2.2", "[2001:db8::1]"] {
        let element = format!("for=\"{client}\";proto=https;host=shop.example");
        send(&app, BALANCER, &[("forwarded", &element)]).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (_, status) = send(
        &app,
        BALANCER,
        &[("forwarded", "for=192.0.2.3;proto=https;host=other.example")],
    )
    .await;
    assert!(
        !status.contains("hit"),
        "another host is another entry: {status}"
    );
}
