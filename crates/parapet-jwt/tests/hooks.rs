//! The application's hooks: its own claim checks and the shape of the guard's refusals,
//! on plain hyper types (tower `service_fn`) and on axum.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::convert::Infallible;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::*;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use parapet_jwt::{Claims, JwtLayer, JwtRejection, VerifiedToken};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

/// Tokens of tenant `acme` only, staff only for 403, and a JSON body on every refusal.
fn layer() -> JwtLayer {
    JwtLayer::builder()
        .hs256(SECRET)
        .realm("shop")
        .check(|token: &VerifiedToken| {
            let claims: Value = token.claims()?;
            match claims["tenant"].as_str() {
                Some("acme") => Ok(()),
                _ => Err(JwtRejection::InvalidToken("this service is for acme")),
            }
        })
        .check(|token: &VerifiedToken| {
            let claims: Value = token.claims()?;
            if claims["disabled"] == json!(true) {
                return Err(JwtRejection::InsufficientScope("enabled"));
            }
            Ok(())
        })
        .refusal(|rejection, response| {
            let (mut parts, _) = response.into_parts();
            parts
                .headers
                .insert(CONTENT_TYPE, "application/json".parse().unwrap());
            let body = json!({
                "code": rejection.error_code().unwrap_or("denied"),
                "status": parts.status.as_u16(),
            });
            Response::from_parts(parts, Bytes::from(body.to_string()))
        })
        .build()
        .unwrap()
}

fn tenant_token(tenant: &str, disabled: bool) -> String {
    sign(&json!({
        "sub": "alice", "tenant": tenant, "disabled": disabled,
        "iat": issued_now(), "exp": now() + 600,
    }))
}

/// (status, `WWW-Authenticate`, content type, body) of each case, in one order.
async fn cases<F, Fut>(send: F) -> Vec<(u16, String, String, String)>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = (u16, String, String, String)>,
{
    let mut out = Vec::new();
    for token in [
        Some(tenant_token("acme", false)),
        Some(tenant_token("globex", false)),
        Some(tenant_token("acme", true)),
        None,
    ] {
        out.push(send(token).await);
    }
    out
}

fn check(results: &[(u16, String, String, String)]) {
    let (status, _, _, body) = &results[0];
    assert_eq!((*status, body.as_str()), (200, "alice"), "acme passes");

    let (status, challenge, kind, body) = &results[1];
    assert_eq!(*status, 401, "another tenant: the check's rejection");
    assert!(
        challenge.contains("realm=\"shop\"") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("this service is for acme"),
        "{challenge}"
    );
    assert_eq!(kind, "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"code": "invalid_token", "status": 401})
    );

    let (status, challenge, _, body) = &results[2];
    assert_eq!(*status, 403, "the second check");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"code": "insufficient_scope", "status": 403})
    );

    let (status, challenge, _, body) = &results[3];
    assert_eq!(
        *status, 401,
        "no token: the guard's own refusal, shaped too"
    );
    assert_eq!(challenge, "Bearer realm=\"shop\"");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"code": "denied", "status": 401})
    );
}

/// `GET /me` with the token as a bearer token, if any.
fn request(token: Option<String>) -> http::request::Builder {
    let request = Request::get("/me");
    match token {
        Some(token) => request.header("authorization", format!("Bearer {token}")),
        None => request,
    }
}

/// (status, `WWW-Authenticate`, content type, body) of a response.
async fn summary<B>(response: Response<B>) -> (u16, String, String, String)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (challenge, kind) = headers_of(response.headers());
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        challenge,
        kind,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn headers_of(headers: &http::HeaderMap) -> (String, String) {
    let text = |name| {
        headers
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (text(WWW_AUTHENTICATE), text(CONTENT_TYPE))
}

#[tokio::test]
async fn hooks_on_plain_hyper_types() {
    let service = layer().layer(tower::service_fn(
        |request: Request<Full<Bytes>>| async move {
            let sub = request
                .extensions()
                .get::<VerifiedToken>()
                .and_then(|t| t.subject().map(str::to_owned))
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(sub))))
        },
    ));
    let results = cases(|token| {
        let service = service.clone();
        async move {
            let request = request(token).body(Full::new(Bytes::new())).unwrap();
            summary(service.oneshot(request).await.unwrap()).await
        }
    })
    .await;
    check(&results);
}

#[tokio::test]
async fn hooks_on_axum() {
    let app = Router::new()
        .route(
            "/me",
            get(|Claims(claims): Claims<Value>| async move {
                claims["sub"].as_str().unwrap_or_default().to_owned()
            }),
        )
        .layer(layer());
    let results = cases(|token| {
        let app = app.clone();
        async move {
            let request = request(token).body(axum::body::Body::empty()).unwrap();
            summary(app.oneshot(request).await.unwrap()).await
        }
    })
    .await;
    check(&results);
}
