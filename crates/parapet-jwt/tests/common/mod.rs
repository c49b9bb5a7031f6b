//! Tokens, revocations on every backend, and a guarded echo service.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response};
use jsonwebtoken::{EncodingKey, Header};
use parapet_core::RedisHandle;
use parapet_jwt::{JwtLayer, Revocations, RevocationsBuilder, VerifiedToken};
use parapet_testkit::{RedisCluster, RedisServer};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

pub const SECRET: &[u8] = b"test secret, thirty-two bytes at least";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    Cluster,
}

pub const ALL: [Backend; 3] = [Backend::Memory, Backend::Redis, Backend::Cluster];

static PREFIX: AtomicUsize = AtomicUsize::new(0);

/// A fresh key prefix, so tests on one server do not see each other's keys.
pub fn prefix() -> String {
    format!("j{}", PREFIX.fetch_add(1, Ordering::SeqCst))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The next millisecond, in seconds with the milliseconds as a fraction: `iat` as the
/// examples issue it. A revocation counts the tokens of its own millisecond as issued before
/// it, so a token minted by this is after every revocation made before the call, and before
/// every one made after it returns.
pub fn issued_now() -> f64 {
    let ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let start = ms();
    loop {
        let now = ms();
        if now > start {
            return now as f64 / 1000.0;
        }
        std::hint::spin_loop();
    }
}

/// An HS256 token of `claims`.
pub fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// A token of `sub` with `jti`, issued now, valid for 15 minutes.
pub fn token(sub: &str, jti: &str) -> String {
    sign(&json!({"sub": sub, "jti": jti, "iss": "test", "iat": issued_now(), "exp": now() + 900}))
}

pub async fn handle(url: &str) -> RedisHandle {
    RedisHandle::builder(url)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
}

pub async fn backend_handle(backend: Backend) -> RedisHandle {
    let builder = match backend {
        Backend::Memory => unreachable!("no redis for the memory backend"),
        Backend::Redis => RedisHandle::builder(RedisServer::shared().url().as_str()),
        Backend::Cluster => RedisHandle::cluster(RedisCluster::shared().urls()),
    };
    builder
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
}

/// Revocations on `backend` under `prefix`, current before they are returned.
pub async fn revocations_with(
    backend: Backend,
    prefix: &str,
    builder: RevocationsBuilder,
) -> Revocations {
    let revocations = match backend {
        Backend::Memory => builder.memory().unwrap(),
        _ => builder
            .prefix(prefix)
            .timeout(Duration::from_millis(500))
            .redis(backend_handle(backend).await)
            .unwrap(),
    };
    assert!(
        revocations.wait_current(Duration::from_secs(10)).await,
        "the replica became current"
    );
    revocations
}

pub async fn revocations(backend: Backend, prefix: &str) -> Revocations {
    revocations_with(backend, prefix, Revocations::builder()).await
}

/// The guard over an echo service that answers the token's `sub`.
pub fn guard(revocations: &Revocations) -> JwtLayer {
    JwtLayer::builder()
        .hs256(SECRET)
        .revocations(revocations.clone())
        .build()
        .unwrap()
}

/// The status and body a guarded echo service gives a request with these headers.
pub async fn call(layer: &JwtLayer, headers: &[(&str, &str)]) -> (u16, String, http::HeaderMap) {
    let service = layer.layer(tower::service_fn(|request: Request<String>| async move {
        let sub = request
            .extensions()
            .get::<VerifiedToken>()
            .and_then(|t| t.subject().map(str::to_owned))
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
            bytes::Bytes::from(sub),
        )))
    }));
    let mut request = Request::builder().uri("/");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = service
        .oneshot(request.body(String::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    (
        parts.status.as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
        parts.headers,
    )
}

/// The status for `token` as a bearer token.
pub async fn status(layer: &JwtLayer, token: &str) -> u16 {
    call(layer, &[("authorization", &format!("Bearer {token}"))])
        .await
        .0
}

/// Logs `token` out as an endpoint behind the guard does: revokes the presented token.
/// Returns the status (204, or 503 when the store failed).
pub async fn logout(layer: &JwtLayer, revocations: &Revocations, token: &str) -> u16 {
    let revocations = revocations.clone();
    let service = layer.layer(tower::service_fn(move |request: Request<String>| {
        let revocations = revocations.clone();
        async move {
            let token = request.extensions().get::<VerifiedToken>().unwrap().clone();
            let status = match revocations.revoke_token(&token).await {
                Ok(()) => 204,
                Err(_) => 503,
            };
            let mut response = Response::new(http_body_util::Full::new(bytes::Bytes::new()));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        }
    }));
    let request = Request::builder()
        .method("POST")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    service.oneshot(request).await.unwrap().status().as_u16()
}
