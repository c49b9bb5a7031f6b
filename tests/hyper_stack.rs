//! The four on plain hyper types with `tower::ServiceBuilder` (no axum): they compose over a
//! `service_fn`, and the cache keeps one client's session-dependent answer from another.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_parapet::cache::CacheLayer;
use tower_parapet::jwt::JwtLayer;
use tower_parapet::ratelimit::{HeaderStyle, Quota, RateLimitLayer};
use tower_parapet::session::{Session, SessionLayer};

async fn handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.uri().path() {
        "/login" => {
            let session = request.extensions().get::<Session>().unwrap();
            session.set_user("alice").await.unwrap();
            "logged in".to_owned()
        }
        "/cart" => {
            let session = request.extensions().get::<Session>().unwrap();
            let user = session.user().await.unwrap();
            format!("cart of {}", user.as_deref().unwrap_or("nobody"))
        }
        _ => "the catalog".to_owned(),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    // Wrongly public everywhere: the cache must still tell the cart apart.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, "public, max-age=30".parse().unwrap());
    Ok(response)
}

fn request(path: &str, ip: [u8; 4], cookie: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::get(format!("http://shop.example{path}"));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let mut request = request.body(Full::new(Bytes::new())).unwrap();
    request
        .extensions_mut()
        .insert(SocketAddr::from((ip, 40_000)));
    request
}

#[tokio::test]
async fn the_four_compose_on_plain_hyper_types() {
    let service = ServiceBuilder::new()
        .layer(
            RateLimitLayer::builder()
                .policy("ip", Quota::per_minute(100))
                .headers(HeaderStyle::Ietf)
                .build()
                .unwrap(),
        )
        .layer(CacheLayer::new())
        .layer(SessionLayer::new())
        .layer(
            JwtLayer::builder()
                .hs256(b"a secret of thirty-two bytes or more")
                .optional()
                .build()
                .unwrap(),
        )
        .service_fn(handler);
    let send = |request| {
        let service = service.clone();
        async move {
            let response = service.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts.headers, String::from_utf8(body.to_vec()).unwrap())
        }
    };

    let (headers, _) = send(request("/login", [192, 0, 2, 1], None)).await;
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let (_, body) = send(request("/cart", [192, 0, 2, 1], Some(&cookie))).await;
    assert_eq!(body, "cart of alice");
    let (headers, body) = send(request("/cart", [192, 0, 2, 2], None)).await;
    assert_eq!(body, "cart of nobody");
    assert!(!headers["cache-status"].to_str().unwrap().contains("hit"));

    send(request("/products", [192, 0, 2, 3], None)).await;
    let (headers, body) = send(request("/products", [192, 0, 2, 4], None)).await;
    assert_eq!(body, "the catalog");
    assert!(headers["cache-status"].to_str().unwrap().contains("hit"));
    // The limiter is outermost: the hit tells this client's own count.
    assert!(headers["ratelimit"].to_str().unwrap().contains("r=99"));
}
