//! The JWT example does what its docs say: in memory, and as two instances sharing one
//! Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly

#[path = "../examples/jwt.rs"]
mod jwt_example;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use parapet_testkit::RedisServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &[u8] = jwt_example::DEVELOPMENT_SECRET.as_bytes();

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One HTTP/1.1 request as curl sends it: (status, headers, JSON body).
async fn curl(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (
        response[9..12].parse().unwrap(),
        head.to_owned(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

async fn login(addr: SocketAddr, user: &str) -> String {
    let (status, _, body) = curl(
        addr,
        "POST",
        "/login",
        None,
        &format!(r#"{{"user":"{user}"}}"#),
    )
    .await;
    assert_eq!(status, 200);
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn jwt_example_in_memory() {
    let addr = serve(jwt_example::app(None, SECRET).await.unwrap()).await;
    let (status, head, _) = curl(addr, "GET", "/me", None, "").await;
    assert_eq!(status, 401);
    assert!(
        head.contains("www-authenticate: Bearer realm=\"parapet-example\""),
        "{head}"
    );

    let alice = login(addr, "alice").await;
    let (status, _, claims) = curl(addr, "GET", "/me", Some(&alice), "").await;
    assert_eq!(status, 200);
    assert_eq!(claims["sub"], "alice");
    let lifetime = claims["exp"].as_f64().unwrap() - claims["iat"].as_f64().unwrap();
    assert!((899.0..=900.0).contains(&lifetime), "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 32));
    assert!(claims.get("role").is_none());

    // Logout revokes that token only.
    let second = login(addr, "alice").await;
    assert_eq!(curl(addr, "POST", "/logout", Some(&alice), "").await.0, 200);
    let (status, head, _) = curl(addr, "GET", "/me", Some(&alice), "").await;
    assert_eq!(status, 401);
    assert!(head.contains("error=\"invalid_token\""));
    assert_eq!(curl(addr, "GET", "/me", Some(&second), "").await.0, 200);

    // Only an admin may revoke a user.
    assert_eq!(
        curl(addr, "POST", "/admin/users/bob/revoke", Some(&second), "")
            .await
            .0,
        403
    );
    let admin = login(addr, "admin").await;
    assert_eq!(
        curl(addr, "GET", "/me", Some(&admin), "").await.2["role"],
        "admin"
    );
    assert_eq!(
        curl(addr, "POST", "/admin/users/alice/revoke", Some(&admin), "")
            .await
            .0,
        200
    );
    assert_eq!(curl(addr, "GET", "/me", Some(&second), "").await.0, 401);
    assert_eq!(curl(addr, "GET", "/me", Some(&admin), "").await.0, 200);
    // Tokens carry `iat` in milliseconds: a login right after the revocation is not
    // revoked, no wait needed.
    let fresh = login(addr, "alice").await;
    assert_eq!(curl(addr, "GET", "/me", Some(&fresh), "").await.0, 200);

    assert_eq!(
        curl(addr, "POST", "/login", None, r#"{"user":"a b"}"#)
            .await
            .0,
        400
    );
}

/// Polls until `token` gets `expected` on `addr`, within 2 s.
async fn eventually(addr: SocketAddr, token: &str, expected: u16) {
    let start = Instant::now();
    loop {
        if curl(addr, "GET", "/me", Some(token), "").await.0 == expected {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "never got {expected}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn jwt_example_instances_on_one_redis_agree() {
    let server = RedisServer::start();
    let url = server.url();
    let a = serve(jwt_example::app(Some(&url), SECRET).await.unwrap()).await;
    let b = serve(jwt_example::app(Some(&url), SECRET).await.unwrap()).await;
    let alice = login(a, "alice").await;
    assert_eq!(
        curl(b, "GET", "/me", Some(&alice), "").await.0,
        200,
        "tokens work on every instance"
    );
    assert_eq!(curl(a, "POST", "/logout", Some(&alice), "").await.0, 200);
    eventually(b, &alice, 401).await;

    let bob = login(b, "bob").await;
    let admin = login(a, "admin").await;
    assert_eq!(
        curl(b, "POST", "/admin/users/bob/revoke", Some(&admin), "")
            .await
            .0,
        200
    );
    eventually(a, &bob, 401).await;

    assert!(
        jwt_example::app(Some("redis://127.0.0.1:1"), SECRET)
            .await
            .is_err(),
        "an unreachable Redis fails at start"
    );
}
