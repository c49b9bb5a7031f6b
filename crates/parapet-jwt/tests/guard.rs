//! The guard through axum: hostile tokens, RFC 6750 answers, extractors, scopes, gRPC.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use parapet_jwt::{Claims, JwtLayer, JwtRejection, Revocations, TokenSource, VerifiedToken};
use serde_json::{Value, json};
use tower::ServiceExt;

fn app(layer: JwtLayer) -> Router {
    Router::new()
        .route("/me", axum::routing::any(|Claims(claims): Claims<Value>| async move { claims.to_string() }))
        .route(
            "/admin",
            get(|token: VerifiedToken| async move { token.require_scope("admin").map(|()| "welcome") }),
        )
        .route(
            "/maybe",
            get(|claims: Option<Claims<Value>>| async move {
                claims.map_or("anonymous".to_owned(), |Claims(c)| c["sub"].to_string())
            }),
        )
        .layer(layer)
}

async fn send(
    app: &Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An EC P-256 key pair from a fixed seed: (private PEM, public PEM).
fn ec_keys(seed: u8) -> (String, String) {
    let key = SigningKey::from_slice(&[seed; 32]).unwrap();
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (private, public)
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

/// `header.payload` signed with HS256 under `secret`.
fn hs256_raw(header: &str, payload: &str, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let app = app(guard(&Revocations::memory()));
    let token = token("alice", "1");
    let (status, _, body) = send(&app, "/me", &[("authorization", &bearer(&token))]).await;
    assert_eq!(status, 200);
    let claims: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(claims["sub"], "alice");
}

#[tokio::test]
async fn missing_and_malformed_credentials_follow_rfc_6750() {
    let layer = JwtLayer::builder()
        .hs256(SECRET)
        .realm("parapet")
        .build()
        .unwrap();
    let app = app(layer);
    let (status, headers, _) = send(&app, "/me", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"parapet\"");
    let (status, headers, _) = send(&app, "/me", &[("authorization", "Basic YTpi")]).await;
    assert_eq!(
        (status, &headers["www-authenticate"]),
        (
            StatusCode::UNAUTHORIZED,
            &"Bearer realm=\"parapet\"".parse().unwrap()
        )
    );
    let token = token("alice", "1");
    for (case, headers) in [
        ("empty", vec![("authorization", "Bearer ".to_owned())]),
        (
            "two fields",
            vec![
                ("authorization", bearer(&token)),
                ("authorization", bearer(&token)),
            ],
        ),
        (
            "bad characters",
            vec![("authorization", "Bearer a,b.c".to_owned())],
        ),
        (
            "oversized",
            vec![("authorization", bearer(&"a".repeat(1024 * 1024)))],
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, response_headers, body) = send(&app, "/me", &headers).await;
        assert_eq!(status, 400, "{case}");
        let challenge = response_headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{case}: {challenge}"
        );
        assert!(!body.contains(&token), "{case}: the token is never echoed");
    }
}

#[tokio::test]
async fn hostile_tokens_get_401_never_500() {
    let (ec_private, ec_public) = ec_keys(7);
    let ec_guard = JwtLayer::builder()
        .public_key_pem(Algorithm::ES256, &ec_public)
        .build()
        .unwrap();
    let ec_app = app(ec_guard);
    let claims = format!(
        r#"{{"sub":"mallory","iat":{},"exp":{}}}"#,
        now(),
        now() + 900
    );
    // The genuine ES256 token passes: the cases below fail for their forgery alone.
    let genuine = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &serde_json::from_str::<Value>(&claims).unwrap(),
        &EncodingKey::from_ec_pem(ec_private.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        send(&ec_app, "/me", &[("authorization", &bearer(&genuine))])
            .await
            .0,
        200
    );

    let hs_app = app(guard(&Revocations::memory()));
    let huge = "9".repeat(400);
    let hostile: Vec<(&str, &Router, String)> = vec![
        (
            "alg none",
            &hs_app,
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&claims)),
        ),
        (
            "alg None",
            &hs_app,
            format!("{}.{}.", b64(r#"{"alg":"None"}"#), b64(&claims)),
        ),
        // Algorithm confusion: HS256 "signed" with the ES256 public key as the secret.
        (
            "alg confusion",
            &ec_app,
            hs256_raw(r#"{"alg":"HS256"}"#, &claims, ec_public.as_bytes()),
        ),
        (
            "other HMAC",
            &hs_app,
            hs256_raw(
                r#"{"alg":"HS256"}"#,
                &claims,
                b"another secret of thirty-two bytes!!",
            ),
        ),
        (
            "kid path",
            &ec_app,
            hs256_raw(
                r#"{"alg":"HS256","kid":"../../../../dev/null"}"#,
                &claims,
                b"",
            ),
        ),
        (
            "kid sql",
            &hs_app,
            hs256_raw(r#"{"alg":"HS512","kid":"' OR '1'='1"}"#, &claims, SECRET),
        ),
        (
            "jku",
            &hs_app,
            hs256_raw(
                r#"{"alg":"HS256","jku":"http://evil.example/jwks"}"#,
                &claims,
                b"x",
            ),
        ),
        (
            "missing exp",
            &hs_app,
            hs256_raw(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"iat":{}}}"#, now()),
                SECRET,
            ),
        ),
        (
            "string exp",
            &hs_app,
            hs256_raw(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"iat":{},"exp":"{}"}}"#, now(), now() + 60),
                SECRET,
            ),
        ),
        (
            "huge exp",
            &hs_app,
            hs256_raw(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"iat":{},"exp":{huge}}}"#, now()),
                SECRET,
            ),
        ),
        (
            "negative exp",
            &hs_app,
            hs256_raw(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"iat":{},"exp":-1}}"#, now()),
                SECRET,
            ),
        ),
        (
            "expired",
            &hs_app,
            hs256_raw(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"iat":{},"exp":{}}}"#, now() - 1000, now() - 500),
                SECRET,
            ),
        ),
        (
            "bad base64",
            &hs_app,
            format!("{}.%%%.{}", b64(r#"{"alg":"HS256"}"#), "abc"),
        ),
        (
            "not json",
            &hs_app,
            hs256_raw(r#"{"alg":"HS256"}"#, "not json", SECRET),
        ),
        (
            "array claims",
            &hs_app,
            hs256_raw(r#"{"alg":"HS256"}"#, "[1,2,3]", SECRET),
        ),
        ("two parts", &hs_app, "abc.def".to_owned()),
        ("five parts", &hs_app, "a.b.c.d.e".to_owned()),
        (
            "deep json",
            &hs_app,
            hs256_raw(
                r#"{"alg":"HS256"}"#,
                &format!(
                    r#"{{"iat":{},"exp":{},"x":{}{}}}"#,
                    now(),
                    now() + 60,
                    "[".repeat(50_000),
                    "]".repeat(50_000)
                ),
                SECRET,
            ),
        ),
        (
            "crit",
            &hs_app,
            hs256_raw(r#"{"alg":"HS256","crit":["exp"]}"#, &claims, SECRET),
        ),
    ];
    for (case, app, token) in hostile {
        let (status, headers, body) = send(app, "/me", &[("authorization", &bearer(&token))]).await;
        // Bad base64 and friends may be caught as malformed credentials (400) when they
        // break the b64token syntax; everything else is an invalid token.
        assert!(status == 401 || status == 400, "{case}: {status}");
        if status == 401 {
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("invalid_token"),
                "{case}"
            );
        }
        assert!(!body.contains(&token), "{case}");
    }
    // A 1 MB token never reaches a decoder: 400 before any work.
    let big = format!(
        "{}.{}.sig",
        b64(r#"{"alg":"HS256"}"#),
        "A".repeat(1024 * 1024)
    );
    assert_eq!(
        send(&hs_app, "/me", &[("authorization", &bearer(&big))])
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn scopes_give_403_insufficient_scope() {
    let app = app(guard(&Revocations::memory()));
    let user = sign(&json!({"sub": "u", "iat": now(), "exp": now() + 60, "scope": "read write"}));
    let admin =
        sign(&json!({"sub": "a", "iat": now(), "exp": now() + 60, "scp": ["read", "admin"]}));
    let (status, headers, _) = send(&app, "/admin", &[("authorization", &bearer(&user))]).await;
    assert_eq!(status, 403);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.ends_with("scope=\"admin\""),
        "{challenge}"
    );
    assert_eq!(
        send(&app, "/admin", &[("authorization", &bearer(&admin))])
            .await
            .0,
        200
    );
}

/// Refusals made behind the guard (a missing scope, claims that do not fit) carry the
/// guard's realm in their challenge, as its own refusals do.
#[tokio::test]
async fn every_challenge_names_the_realm() {
    let layer = JwtLayer::builder()
        .hs256(SECRET)
        .realm("shop")
        .build()
        .unwrap();
    let app = app(layer);
    let user = sign(&json!({"sub": "u", "iat": now(), "exp": now() + 60}));
    let (status, headers, _) = send(&app, "/admin", &[("authorization", &bearer(&user))]).await;
    assert_eq!(status, 403);
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"shop\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"admin\""
    );
    let (status, headers, _) = send(&app, "/me", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"shop\"");
}

/// An app mints its tokens with the re-exported jsonwebtoken (no second dependency), and
/// the guard has chosen the crypto backend when it was built: an app whose own jsonwebtoken
/// also enabled `aws_lc_rs` (two backends, so none by features) still verifies instead of
/// panicking. (`install_default` succeeds once per process: it fails once the guard did it.)
#[tokio::test]
async fn tokens_minted_with_the_reexport_pass_and_the_backend_is_chosen() {
    use parapet_jwt::jsonwebtoken::crypto::{CryptoProvider, rust_crypto};
    let app = app(guard(&Revocations::memory()));
    assert!(
        CryptoProvider::install_default(&rust_crypto::DEFAULT_PROVIDER).is_err(),
        "the guard installed a backend when it was built"
    );
    let claims = json!({"sub": "minted", "iat": now(), "exp": now() + 60});
    let token = parapet_jwt::jsonwebtoken::encode(
        &parapet_jwt::jsonwebtoken::Header::default(),
        &claims,
        &parapet_jwt::jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let (status, _, body) = send(&app, "/me", &[("authorization", &bearer(&token))]).await;
    assert_eq!((status, body.contains("minted")), (StatusCode::OK, true));
}

#[tokio::test]
async fn an_optional_guard_lets_anonymous_requests_through_but_not_bad_tokens() {
    let layer = JwtLayer::builder()
        .hs256(SECRET)
        .optional()
        .build()
        .unwrap();
    let app = app(layer);
    assert_eq!(send(&app, "/maybe", &[]).await.2, "anonymous");
    let token = token("alice", "1");
    assert_eq!(
        send(&app, "/maybe", &[("authorization", &bearer(&token))])
            .await
            .2,
        "\"alice\""
    );
    assert_eq!(
        send(&app, "/maybe", &[("authorization", "Bearer a.b.c")])
            .await
            .0,
        401
    );
    // A route that needs claims still says 401 to an anonymous request, not 500.
    assert_eq!(send(&app, "/me", &[]).await.0, 401);
}

#[tokio::test]
async fn claims_on_an_unguarded_route_are_a_wiring_error() {
    let app = Router::new().route(
        "/me",
        get(|Claims(c): Claims<Value>| async move { c.to_string() }),
    );
    assert_eq!(send(&app, "/me", &[]).await.0, 500);
}

#[tokio::test]
async fn the_token_can_come_from_a_cookie() {
    let layer = JwtLayer::builder()
        .hs256(SECRET)
        .token_source(TokenSource::header_or_cookie("token"))
        .build()
        .unwrap();
    let app = app(layer);
    let token = token("alice", "1");
    let cookie = format!("theme=dark; token={token}");
    assert_eq!(send(&app, "/me", &[("cookie", &cookie)]).await.0, 200);
    // A byte that is not ASCII in another cookie does not hide the token.
    let odd = format!("junk=\u{e9}; token={token}");
    assert_eq!(send(&app, "/me", &[("cookie", &odd)]).await.0, 200);
    // A Unicode space before the name makes another cookie, not a second token.
    let spaced = format!("\u{a0}token=x; token={token}");
    assert_eq!(send(&app, "/me", &[("cookie", &spaced)]).await.0, 200);
    let both = [
        ("cookie", cookie.as_str()),
        ("authorization", &bearer(&token)),
    ];
    assert_eq!(send(&app, "/me", &both).await.0, 400);
}

#[tokio::test]
async fn logout_revokes_the_presented_token() {
    let revocations = Revocations::memory();
    let logout = {
        let revocations = revocations.clone();
        move |token: VerifiedToken| async move {
            revocations
                .revoke_token(&token)
                .await
                .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
            Ok::<_, StatusCode>(StatusCode::NO_CONTENT)
        }
    };
    let app = Router::new()
        .route(
            "/me",
            get(|Claims(c): Claims<Value>| async move { c.to_string() }),
        )
        .route("/logout", axum::routing::post(logout))
        .layer(guard(&revocations));
    let token = token("alice", "session-1");
    let auth = [("authorization", bearer(&token))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(send(&app, "/me", &auth).await.0, 200);
    let request = Request::post("/logout")
        .header("authorization", bearer(&token))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.clone().oneshot(request).await.unwrap().status(), 204);
    assert_eq!(send(&app, "/me", &auth).await.0, 401);
    assert_eq!(
        send(
            &app,
            "/me",
            &[(
                "authorization",
                &bearer(&common::token("alice", "session-2"))
            )]
        )
        .await
        .0,
        200
    );
}

/// A gRPC-shaped call (`POST`, `content-type: application/grpc…`) to `/me`.
async fn grpc(
    app: &Router,
    content_type: &str,
    token: Option<&str>,
) -> (StatusCode, http::HeaderMap) {
    let mut request = Request::post("/me").header("content-type", content_type);
    if let Some(token) = token {
        request = request.header("authorization", bearer(token));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    assert!(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .len()
            < 200
    );
    (status, headers)
}

#[tokio::test]
async fn grpc_calls_get_grpc_statuses() {
    let app = app(guard(&Revocations::memory()));
    let (status, headers) = grpc(&app, "application/grpc", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "16");
    assert_eq!(headers["cache-control"], "no-store");
    let (status, headers) = grpc(&app, "application/grpc+proto", Some("a.b.c")).await;
    assert_eq!(
        (status, &headers["grpc-status"]),
        (StatusCode::OK, &"16".parse().unwrap())
    );
    // A valid token passes untouched.
    let (status, headers) = grpc(&app, "application/grpc", Some(&token("alice", "1"))).await;
    assert_eq!(status, 200);
    assert!(headers.get("grpc-status").is_none());
    // A GET that claims gRPC gets an HTTP refusal, not a cacheable 200.
    let (status, _, _) = send(&app, "/me", &[("content-type", "application/grpc")]).await;
    assert_eq!(status, 401);
}

#[test]
fn configuration_errors_are_clear() {
    let short = JwtLayer::builder().hs256(b"short").build();
    assert!(short.unwrap_err().0.contains("at least 32 bytes"));
    assert!(
        JwtLayer::builder()
            .build()
            .unwrap_err()
            .0
            .contains("needs a key")
    );
    let lenient = JwtLayer::builder()
        .hs256(SECRET)
        .leeway(Duration::from_secs(600))
        .revocations(Revocations::memory())
        .build();
    assert!(lenient.unwrap_err().0.contains("leeway"));
    assert!(
        JwtLayer::builder()
            .hs256(SECRET)
            .realm("a\"b")
            .build()
            .is_err()
    );
    let rejection = JwtRejection::Revoked;
    assert_eq!(rejection.status(), 401);
}
