//! The session example does what its docs say: in memory, and as two instances sharing one
//! Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly

#[path = "../examples/session.rs"]
mod session_example;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use parapet_testkit::RedisServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

/// curl with a cookie jar (`-c jar -b jar`) of the session cookie.
#[derive(Clone, Default)]
struct Curl {
    jar: Arc<Mutex<Option<String>>>,
}

impl Curl {
    async fn send(&self, addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut text = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: curl/8\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(cookie) = self.jar.lock().unwrap().clone() {
            text.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(body);
        stream.write_all(text.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        for line in head.lines() {
            if let Some(cookie) = line.strip_prefix("set-cookie: ") {
                assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"));
                let pair = cookie.split(';').next().unwrap().to_owned();
                *self.jar.lock().unwrap() = (!cookie.contains("Max-Age=0")).then_some(pair);
            }
        }
        let json = serde_json::from_str(body).unwrap_or(Value::Null);
        (response[9..12].parse().unwrap(), json)
    }
}

#[tokio::test]
async fn session_example_in_memory_logs_in_counts_and_keeps_a_cart() {
    let addr = serve(session_example::app(None).await.unwrap()).await;
    let curl = Curl::default();
    assert_eq!(curl.send(addr, "GET", "/me", "").await.0, 401);
    assert_eq!(curl.send(addr, "POST", "/cart/items/42", "").await.0, 200);
    let anonymous = curl.jar.lock().unwrap().clone();
    let (status, body) = curl
        .send(addr, "POST", "/login", r#"{"user":"alice"}"#)
        .await;
    assert_eq!((status, body["user"].as_str()), (200, Some("alice")));
    assert_ne!(
        *curl.jar.lock().unwrap(),
        anonymous,
        "login issued a new id"
    );
    for n in 1..=2 {
        let (status, me) = curl.send(addr, "GET", "/me", "").await;
        assert_eq!(status, 200);
        assert_eq!(
            (me["user"].as_str(), me["visits"].as_i64()),
            (Some("alice"), Some(n))
        );
    }
    let (_, cart) = curl.send(addr, "GET", "/cart", "").await;
    assert_eq!(
        cart["items"],
        serde_json::json!(["42"]),
        "the cart carried over login"
    );
    let (_, sessions) = curl.send(addr, "GET", "/sessions", "").await;
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["ip"], "127.0.0.1");
    assert_eq!(list[0]["user_agent"], "curl/8");
    assert_eq!(list[0]["current"], true);
    assert_eq!(
        curl.send(addr, "POST", "/login", r#"{"user":""}"#).await.0,
        400
    );
    assert_eq!(curl.send(addr, "POST", "/logout", "").await.0, 200);
    assert_eq!(curl.send(addr, "GET", "/me", "").await.0, 401);
}

#[tokio::test]
async fn two_session_example_instances_on_one_redis_share_everything() {
    let server = RedisServer::start();
    let a = serve(session_example::app(Some(&server.url())).await.unwrap()).await;
    let b = serve(session_example::app(Some(&server.url())).await.unwrap()).await;
    let laptop = Curl::default();
    let phone = Curl::default();
    laptop.send(a, "POST", "/login", r#"{"user":"bob"}"#).await;
    phone.send(b, "POST", "/login", r#"{"user":"bob"}"#).await;
    // 100 concurrent adds, spread over both instances, on one session.
    let adds: Vec<_> = (0..100)
        .map(|i| {
            let laptop = laptop.clone();
            let addr = if i % 2 == 0 { a } else { b };
            tokio::spawn(async move {
                laptop
                    .send(addr, "POST", &format!("/cart/items/{i}"), "")
                    .await
                    .0
            })
        })
        .collect();
    for add in adds {
        assert_eq!(add.await.unwrap(), 200);
    }
    let (_, cart) = laptop.send(b, "GET", "/cart", "").await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 100);
    assert_eq!(laptop.send(b, "GET", "/me", "").await.1["visits"], 1);
    assert_eq!(laptop.send(a, "GET", "/me", "").await.1["visits"], 2);
    let (_, sessions) = phone.send(a, "GET", "/sessions", "").await;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 2);
    let (_, revoked) = phone.send(a, "DELETE", "/sessions/others", "").await;
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(
        laptop.send(b, "GET", "/me", "").await.0,
        401,
        "logged out on every instance"
    );
    assert_eq!(phone.send(b, "GET", "/me", "").await.0, 200);
}
