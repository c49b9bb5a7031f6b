//! `rediss://` against a real redis-server listening with TLS, on a certificate signed by
//! a CA the test makes: commands, scripts and the fan-out's subscription all go over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parapet_core::fanout::Event;
use parapet_core::{Command, FanOut, RedisHandle, Script, StoreError};
use parapet_testkit::RedisServer;

#[tokio::test]
async fn rediss_with_a_private_root_certificate() {
    let server = RedisServer::start_tls();
    let redis = RedisHandle::builder(server.tls_url())
        .tls_root_certificate(server.tls_ca_pem())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    redis.ping().await.unwrap();

    let script =
        Script::new("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])");
    let mut call = script.call(1);
    call.key("tls:key").arg("over tls");
    let value: String = redis.eval(&call).await.unwrap();
    assert_eq!(value, "over tls");
    // The TLS port speaks nothing else; the plain port sees the same data.
    assert_eq!(server.command(&["GET", "tls:key"]), "over tls");

    // The fan-out subscribes over TLS too.
    let heard = Arc::new(AtomicUsize::new(0));
    let fanout = {
        let heard = heard.clone();
        FanOut::new(&redis, "tls:channel", move |event| {
            if let Event::Message(b"hello") = event {
                heard.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    fanout.start();
    for _ in 0..200 {
        if fanout.is_current() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(fanout.is_current());
    let mut publish = Command::new("PUBLISH");
    publish.arg("tls:channel").arg("hello");
    let _: i64 = redis.query(&publish).await.unwrap();
    for _ in 0..200 {
        if heard.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(heard.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rediss_refuses_a_server_it_cannot_verify() {
    let server = RedisServer::start_tls();
    // The system trust store does not know the test's CA.
    let redis = RedisHandle::builder(server.tls_url())
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let error = redis.ping().await.unwrap_err();
    assert!(!matches!(error, StoreError::InvalidConfig(_)), "{error}");
    // Nor does another CA's certificate verify it.
    let other = RedisServer::start_tls();
    let redis = RedisHandle::builder(server.tls_url())
        .tls_root_certificate(other.tls_ca_pem())
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    assert!(redis.ping().await.is_err());
}
