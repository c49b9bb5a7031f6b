//! Redis memory per unit of each middleware: a rate-limit key, an anonymous session with
//! one cart item, a revoked token, a cached 1 KiB response. Each is made N times on a fresh
//! `redis-server` (no other keys), and `INFO memory`'s `used_memory` before and after gives
//! the bytes per unit, Redis's own overhead (dictionary entries, expiries) included. The
//! figures size `maxmemory` (README, "Deploying").
//!
//! `cargo bench -p parapet-benches --bench redis_bytes` (env: `UNITS`, default 20,000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use parapet_testkit::RedisServer;
use tower::{Layer, ServiceExt};
use tower_parapet::cache::{CacheLayer, RedisStore as CacheStore};
use tower_parapet::core::{RedisHandle, Subject};
use tower_parapet::jwt::Revocations;
use tower_parapet::ratelimit::{
    Policy, PolicySet, Quota, RateLimitStore, RedisStore as LimitStore,
};
use tower_parapet::session::store::NewSession;
use tower_parapet::session::{
    Changes, RedisStore as SessionStore, SessionKey, SessionRules, SessionStore as _,
};

fn used_memory(server: &RedisServer) -> i64 {
    let info = server.command(&["INFO", "memory"]);
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Bytes per unit of `make(i)` for `units` units, on a flushed server.
async fn per_unit<F, Fut>(server: &RedisServer, units: usize, mut make: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    server.command(&["FLUSHALL"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = used_memory(server);
    for i in 0..units {
        make(i).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    (used_memory(server) - before) as f64 / units as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let units: usize = std::env::var("UNITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let server = RedisServer::start();
    let handle = RedisHandle::builder(server.url())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();

    let limits = LimitStore::new(handle.clone()).unwrap();
    // A day's quota: its key outlives the run (a minute's would expire within 600 ms).
    let minute = PolicySet::new([Policy::new("day", Quota::per_day(1000)).unwrap()]).unwrap();
    let limit = per_unit(&server, units, |i| {
        let (limits, minute) = (&limits, &minute);
        async move {
            let subject = Subject::new("ip", format!("198.51.{}.{}", i / 256, i % 256));
            limits.check(&subject, minute, 1).await.unwrap();
        }
    })
    .await;

    let sessions = SessionStore::new(handle.clone()).unwrap();
    let rules = SessionRules::new(
        Duration::from_secs(1800),
        Duration::from_secs(86_400),
        Duration::from_secs(60),
        64 * 1024,
    );
    let session = per_unit(&server, units, |i| {
        let (sessions, rules) = (&sessions, &rules);
        async move {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let key = SessionKey::new([7; 16], id);
            let mut new = NewSession::default();
            let mut changes = Changes::default();
            changes
                .set
                .push(("item:42".into(), Bytes::from_static(b"true")));
            new.changes = changes;
            new.ip = Some("198.51.100.7".into());
            new.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/156".into());
            sessions.create(&key, &new, rules).await.unwrap();
        }
    })
    .await;

    let revocations = Revocations::redis(handle.clone()).unwrap();
    revocations.wait_current(Duration::from_secs(5)).await;
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 900.0;
    let revocation = per_unit(&server, units, |i| {
        let revocations = &revocations;
        async move {
            let jti = format!("{i:032x}");
            revocations
                .revoke_token_id(Some("https://issuer.example"), &jti, exp)
                .await
                .unwrap();
        }
    })
    .await;

    let body = Bytes::from(vec![b'x'; 1024]);
    let cache = CacheLayer::builder()
        .store(CacheStore::new(handle.clone()).unwrap())
        .store_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let origin = tower::service_fn(move |_: Request<Full<Bytes>>| {
        let body = body.clone();
        async move {
            let mut response = Response::new(Full::new(body));
            response
                .headers_mut()
                .insert("cache-control", "public, max-age=600".parse().unwrap());
            Ok::<_, Infallible>(response)
        }
    });
    let service = cache.layer(origin);
    let cached = per_unit(&server, units, |i| {
        let service = service.clone();
        async move {
            let request = Request::get(format!("http://shop.example/products/{i}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = service.oneshot(request).await.unwrap();
            // Stored when the body has been read to its end.
            response.into_body().collect().await.unwrap();
        }
    })
    .await;

    println!("| unit ({units} of each) | Redis bytes per unit |");
    println!("|---|---|");
    println!("| rate-limit key (one GCRA policy, 1,000 a day) | {limit:.0} |");
    println!("| anonymous session, one cart item, IP and User-Agent | {session:.0} |");
    println!("| revoked token (jti) | {revocation:.0} |");
    println!("| cached response, 1 KiB body | {cached:.0} |");
}
