//! The gRPC example through a real tonic client: refused calls are RESOURCE_EXHAUSTED with a
//! retry delay; and the JWT guard on the same kind of server answers UNAUTHENTICATED.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly

#[path = "../grpc_ratelimit.rs"]
mod grpc_example;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_parapet::jwt::JwtLayer;

async fn client(addr: SocketAddr) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

fn check() -> tonic::Request<HealthCheckRequest> {
    tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    })
}

#[tokio::test]
async fn grpc_example_refuses_the_sixth_call_with_resource_exhausted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limit = grpc_example::limit(None).await.unwrap();
    tokio::spawn(grpc_example::serve(listener, limit));
    let mut client = client(addr).await;
    for i in 0..5 {
        let response = client.check(check()).await;
        assert!(response.is_ok(), "call {i}: {response:?}");
    }
    let refused = client.check(check()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(refused.message(), "rate limited");
    let pushback: u64 = refused
        .metadata()
        .get("grpc-retry-pushback-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1_000..=12_000).contains(&pushback), "{pushback}");
    assert!(refused.metadata().get("ratelimit").is_some());
}

#[tokio::test]
async fn jwt_guard_on_tonic_answers_unauthenticated() {
    const SECRET: &[u8] = b"grpc test secret, thirty-two bytes!!";
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let guard = JwtLayer::builder().hs256(SECRET).build().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .layer(guard)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let mut client = client(addr).await;
    let refused = client.check(check()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": "svc", "iat": now, "exp": now + 60});
    let token = tower_parapet::jwt::jsonwebtoken::encode(
        &tower_parapet::jwt::jsonwebtoken::Header::default(),
        &claims,
        &tower_parapet::jwt::jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let mut request = check();
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert!(client.check(request).await.is_ok());

    let mut forged = check();
    forged
        .metadata_mut()
        .insert("authorization", "Bearer a.b.c".parse().unwrap());
    assert_eq!(
        client.check(forged).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}
