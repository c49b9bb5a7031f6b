//! The four middlewares on one axum router, in every order, each as `layer` or
//! `route_layer`, with tower-http's Trace, Timeout and Compression beside them: no order
//! lets the cache serve what depended on one client's session or token to another, store
//! a cookie or a refusal, or replay another request's rate-limit decision; and caching
//! still works for what depends on no client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;
use tower_parapet::cache::CacheLayer;
use tower_parapet::jwt::jsonwebtoken::{self, EncodingKey, Header};
use tower_parapet::jwt::{Claims, JwtLayer};
use tower_parapet::ratelimit::{HeaderStyle, Quota, RateLimitLayer};
use tower_parapet::session::{Session, SessionLayer};

const SECRET: &[u8] = b"composition test secret, 32 bytes or more";
const PUBLIC: &str = "public, max-age=30";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    RateLimit,
    Cache,
    Session,
    Jwt,
}

/// A handler that reads the session and, wrongly, calls its answer public: the cart of
/// whoever asks.
async fn cart(session: Session) -> impl IntoResponse {
    let owner = session.user().await.unwrap();
    let body = format!("cart of {}", owner.as_deref().unwrap_or("nobody"));
    ([(header::CACHE_CONTROL, PUBLIC)], body)
}

async fn login(session: Session, body: String) -> impl IntoResponse {
    session.set_user(&body).await.unwrap();
    "logged in"
}

/// Behind the guard, and wrongly public too.
async fn secret(claims: Option<Claims<serde_json::Value>>) -> axum::response::Response {
    match claims {
        Some(Claims(claims)) => (
            [(header::CACHE_CONTROL, PUBLIC)],
            format!("secret of {}", claims["sub"].as_str().unwrap()),
        )
            .into_response(),
        None => (StatusCode::UNAUTHORIZED, "no token").into_response(),
    }
}

/// Depends on no client: the cache may share it.
async fn products() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, PUBLIC)], "the catalog")
}

fn app(order: &[Part; 4], route_layer: [bool; 4]) -> Router {
    let mut router = Router::new()
        .route("/cart", get(cart))
        .route("/login", post(login))
        .route("/api/secret", get(secret))
        .route("/products", get(products))
        .layer(tower_http::compression::CompressionLayer::new());
    // The first in `order` is the innermost.
    for (part, route) in order.iter().zip(route_layer) {
        macro_rules! add {
            ($layer:expr) => {
                if route {
                    router.route_layer($layer)
                } else {
                    router.layer($layer)
                }
            };
        }
        router = match part {
            Part::RateLimit => add!(
                RateLimitLayer::builder()
                    .policy("ip", Quota::per_minute(5))
                    .headers(HeaderStyle::Both)
                    .build()
                    .unwrap()
            ),
            Part::Cache => add!(CacheLayer::builder().build().unwrap()),
            Part::Session => add!(SessionLayer::builder().build().unwrap()),
            Part::Jwt => add!(
                JwtLayer::builder()
                    .hs256(SECRET)
                    .optional()
                    .build()
                    .unwrap()
            ),
        };
    }
    #[allow(deprecated)] // TimeoutLayer::new: the status-code form is newer than needed here
    let timeout = tower_http::timeout::TimeoutLayer::new(Duration::from_secs(10));
    router
        .layer(timeout)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

fn token(user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({ "sub": user, "iat": now, "exp": now + 600 });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn hit(&self) -> bool {
        self.headers
            .get_all("cache-status")
            .iter()
            .any(|v| v.to_str().unwrap().contains("hit"))
    }

    /// The remaining count (`r`) of the `ip` policy in the `RateLimit` field, if any.
    fn remaining(&self) -> Option<u64> {
        let lines: Vec<&str> = self
            .headers
            .get_all("ratelimit")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(
            lines.len() <= 1,
            "one limiter, one RateLimit line: {lines:?}"
        );
        let line = lines.first()?;
        let r = line.split(';').find_map(|p| p.strip_prefix("r="))?;
        Some(r.parse().unwrap())
    }
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    ip: [u8; 4],
    headers: &[(&str, String)],
    body: &str,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut request = request.body(Body::from(body.to_owned())).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// The session cookie (`name=value`) a response sets, if any.
fn session_cookie(answer: &Answer) -> Option<String> {
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| !c.ends_with('='))
}

/// Every check of the module docs, on one arrangement.
async fn check(order: &[Part; 4], route_layer: [bool; 4]) {
    let app = app(order, route_layer);
    let case = format!("{order:?} route_layer {route_layer:?}");
    let (alice_ip, bob_ip, carol_ip, dave_ip, eve_ip) = (
        [192, 0, 2, 1],
        [192, 0, 2, 2],
        [192, 0, 2, 3],
        [192, 0, 2, 4],
        [192, 0, 2, 5],
    );

    // Sessions: alice logs in and reads her cart; bob, anonymous, must not get it.
    let logged_in = send(&app, "POST", "/login", alice_ip, &[], "alice").await;
    assert_eq!(logged_in.status, StatusCode::OK, "{case}");
    let alice_cookie = session_cookie(&logged_in).expect("a session cookie");
    let cookie = [("cookie", alice_cookie.clone())];
    let alices = send(&app, "GET", "/cart", alice_ip, &cookie, "").await;
    assert_eq!(alices.body, "cart of alice", "{case}");
    for _ in 0..2 {
        let bobs = send(&app, "GET", "/cart", bob_ip, &[], "").await;
        assert_eq!(
            bobs.body, "cart of nobody",
            "{case}: bob got another's cart"
        );
        assert!(
            !bobs.hit(),
            "{case}: a session-reading answer came from the cache"
        );
        let cookies: Vec<_> = bobs.headers.get_all(header::SET_COOKIE).iter().collect();
        assert!(
            cookies
                .iter()
                .all(|c| !c.to_str().unwrap().contains(&alice_cookie)),
            "{case}: bob got alice's cookie"
        );
    }
    let again = send(&app, "GET", "/cart", alice_ip, &cookie, "").await;
    assert_eq!(again.body, "cart of alice", "{case}");

    // The guard: carol's answer reaches neither a request without a token, nor one with a
    // forged token, nor dave.
    let carol = [("authorization", format!("Bearer {}", token("carol")))];
    let carols = send(&app, "GET", "/api/secret", carol_ip, &carol, "").await;
    assert_eq!(
        (carols.status, carols.body.as_str()),
        (StatusCode::OK, "secret of carol"),
        "{case}"
    );
    for headers in [vec![], vec![("authorization", "Bearer garbage".to_owned())]] {
        let other = send(&app, "GET", "/api/secret", eve_ip, &headers, "").await;
        assert_eq!(
            other.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {headers:?}"
        );
        assert!(!other.body.contains("carol"), "{case}");
    }
    let dave = [("authorization", format!("Bearer {}", token("dave")))];
    let daves = send(&app, "GET", "/api/secret", dave_ip, &dave, "").await;
    assert_eq!(daves.body, "secret of dave", "{case}");

    // Rate limits: eve (5 a minute, 3 used above) is refused; the refusal is not stored,
    // so dave still gets the catalog.
    let mut refused = None;
    for _ in 0..6 {
        let answer = send(&app, "GET", "/products", eve_ip, &[], "").await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(answer);
            break;
        }
    }
    let limiter_outside_cache = position(order, Part::RateLimit) > position(order, Part::Cache);
    if limiter_outside_cache {
        let refused = refused.expect("eve is limited");
        assert!(refused.headers.contains_key(header::RETRY_AFTER), "{case}");
    }
    let first = send(&app, "GET", "/products", dave_ip, &[], "").await;
    let second = send(&app, "GET", "/products", dave_ip, &[], "").await;
    for answer in [&first, &second] {
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::OK, "the catalog"),
            "{case}: a refusal or another's answer was served"
        );
    }
    // What depends on no client is still cached, in every order.
    assert!(second.hit(), "{case}: the catalog is not cached");
    // A hit never replays the decision of the request that stored it: the limiter outside
    // the cache tells this request's own count, one inside tells nothing on a hit.
    match (first.remaining(), second.remaining()) {
        (Some(a), Some(b)) => assert_eq!(b + 1, a, "{case}: a replayed decision"),
        (_, None) => {}
        (None, Some(_)) => panic!("{case}: a hit told a decision its miss did not"),
    }
    assert!(
        limiter_outside_cache || second.remaining().is_none(),
        "{case}: a hit replayed a stored RateLimit field"
    );
    for name in ["x-ratelimit-remaining", "ratelimit-policy"] {
        assert!(
            limiter_outside_cache || !second.headers.contains_key(name),
            "{case}: a hit replayed a stored {name}"
        );
    }
}

fn position(order: &[Part; 4], part: Part) -> usize {
    order.iter().position(|p| *p == part).unwrap()
}

/// Heap's algorithm: all 24 orders of the four.
fn orders() -> Vec<[Part; 4]> {
    fn permute(k: usize, parts: &mut [Part; 4], out: &mut Vec<[Part; 4]>) {
        if k == 1 {
            out.push(*parts);
            return;
        }
        permute(k - 1, parts, out);
        for i in 0..k - 1 {
            if k.is_multiple_of(2) {
                parts.swap(i, k - 1);
            } else {
                parts.swap(0, k - 1);
            }
            permute(k - 1, parts, out);
        }
    }
    let mut out = Vec::new();
    let mut parts = [Part::RateLimit, Part::Cache, Part::Session, Part::Jwt];
    permute(4, &mut parts, &mut out);
    out
}

#[tokio::test]
async fn every_order_of_the_four_is_safe() {
    let orders = orders();
    assert_eq!(orders.len(), 24);
    let distinct: std::collections::HashSet<String> =
        orders.iter().map(|o| format!("{o:?}")).collect();
    assert_eq!(distinct.len(), 24);
    for order in &orders {
        // Each of the four as `layer` or `route_layer`: all 16 ways.
        for mask in 0..16u8 {
            let route_layer = [0, 1, 2, 3].map(|i| mask & (1 << i) != 0);
            check(order, route_layer).await;
        }
    }
}
