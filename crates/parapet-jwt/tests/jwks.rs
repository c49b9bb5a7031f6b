//! A JWKS fetched from a URL: keys by kid, rotation, and rate-limited refetches.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use http::Request;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use parapet_jwt::{JwtLayer, VerifiedToken};
use serde_json::json;
use tower::{Layer, ServiceExt};

fn key(seed: u8) -> EncodingKey {
    let pem = SigningKey::from_slice(&[seed; 32])
        .unwrap()
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
}

fn jwk(seed: u8, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&key(seed), Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn token(seed: u8, kid: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &json!({"sub": kid, "iat": now, "exp": now + 60}),
        &key(seed),
    )
    .unwrap()
}

/// Serves the current key set and counts fetches.
async fn serve(keys: Arc<Mutex<Vec<Jwk>>>, hits: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let (keys, hits) = (keys.clone(), hits.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let set = JwkSet {
                    keys: keys.lock().unwrap().clone(),
                };
                serde_json::to_string(&set).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/jwks.json")
}

async fn status(layer: &JwtLayer, token: &str) -> u16 {
    let service = layer.layer(tower::service_fn(|request: Request<String>| async move {
        assert!(request.extensions().get::<VerifiedToken>().is_some());
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    }));
    let request = Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    service.oneshot(request).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn keys_are_fetched_rotated_and_refetched_at_most_so_often() {
    let keys = Arc::new(Mutex::new(vec![jwk(1, "k1")]));
    let hits = Arc::new(AtomicUsize::new(0));
    let url = serve(keys.clone(), hits.clone()).await;
    let layer = JwtLayer::builder()
        .jwks_url(url)
        .jwks_refresh(Duration::from_secs(3600), Duration::from_millis(500))
        .build()
        .unwrap();
    assert_eq!(status(&layer, &token(1, "k1")).await, 200);
    // A token signed by k1's key but naming a kid we do not have: unknown key.
    assert_eq!(status(&layer, &token(1, "k9")).await, 401);

    // The issuer rotates to k2: the first k2 token causes a refetch and passes.
    keys.lock().unwrap().push(jwk(2, "k2"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = hits.load(Ordering::SeqCst);
    assert_eq!(status(&layer, &token(2, "k2")).await, 200);
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);

    // A flood of unknown kids costs at most one fetch per interval (500 ms): one, unless
    // this machine is slow enough that the flood spans more intervals.
    let flood: Vec<String> = (0..50).map(|i| token(3, &format!("bogus{i}"))).collect();
    let before = hits.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for token in &flood {
        assert_eq!(status(&layer, token).await, 401);
    }
    let fetches = hits.load(Ordering::SeqCst) - before;
    let intervals = 1 + started.elapsed().as_millis() / 500;
    assert!(
        fetches as u128 <= intervals,
        "{fetches} fetches in {intervals} intervals"
    );
    // A key's signature under another kid's key fails.
    assert_eq!(status(&layer, &token(2, "k1")).await, 401);
}

#[test]
fn a_jwks_over_plain_http_elsewhere_than_loopback_is_refused() {
    assert!(
        JwtLayer::builder()
            .jwks_url("http://idp.example/jwks.json")
            .build()
            .is_err()
    );
    assert!(
        JwtLayer::builder()
            .jwks_url("http://127.0.0.1.evil.example/jwks.json")
            .build()
            .is_err()
    );
    assert!(
        JwtLayer::builder()
            .jwks_url("https://idp.example/jwks.json")
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_401_not_a_500() {
    let layer = JwtLayer::builder()
        .jwks_url("http://127.0.0.1:9/jwks.json")
        .build()
        .unwrap();
    assert_eq!(status(&layer, &token(1, "k1")).await, 401);
}
