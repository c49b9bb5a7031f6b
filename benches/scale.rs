//! Flat as the work grows: each middleware's cost per request and memory per unit at 1k,
//! 100k and 1M live units — rate-limit keys, cached entries, sessions, revocations — in
//! memory, and on Redis for the limiter, the cache and sessions (the JWT guard's revocation
//! checks read its in-memory replica whatever the store).
//!
//! Each case runs in a process of its own (so that memory freed by one case and kept by the
//! allocator does not hide the next): it fills the store with N units through the public
//! API (the layer, where a unit is made by a request), then runs `SCALE_OPS` operations
//! (default 200,000) on units drawn at random among the N, from 32 tasks on 2 threads for
//! Redis and 2 for memory (`SCALE_TASKS`; see `tasks`), and
//! reports operations per second, p50 and p99 latency, and bytes per unit (process RSS for
//! memory, `INFO memory`'s `used_memory` for Redis, read once the units are made; for
//! 1,000 units the process's fixed costs dominate the RSS figure). Sessions are read through a random
//! sample of 50,000 of the N cookies (keeping a million cookies would weigh on the RSS).
//!
//! `cargo bench -p parapet-benches --bench scale` (env: `SCALE_SIZES`, default
//! `1000,100000,1000000`; `SCALE_OPS`; `SCALE_ONLY`, a substring of the case names). The
//! table goes to stdout and `target/scale-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // the load helpers are for the other harnesses
mod harness;

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{EncodingKey, Header};
use parapet_testkit::RedisServer;
use serde::Serialize;
use tower::{Layer, ServiceExt};
use tower_parapet::cache::CacheLayer;
use tower_parapet::core::RedisHandle;
use tower_parapet::jwt::{JwtLayer, Revocations};
use tower_parapet::ratelimit::{Policy, PolicySet, Quota, RateLimitStore, Subject};
use tower_parapet::session::{Session, SessionLayer};

use harness::env;

const SECRET: &[u8] = b"scale-bench-secret-of-thirty-two-bytes!";
const COOKIE_SAMPLE: usize = 50_000;

fn used_memory(server: &RedisServer) -> i64 {
    server
        .command(&["INFO", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// splitmix64, seeded per task.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How many tasks run operations at once: `SCALE_TASKS`, or 32 on Redis (round trips
/// overlap) and 2 in memory (one per thread: with more, a task's measured latency is mostly
/// its wait behind the others — tokio lets a task run up to 128 ready operations before it
/// yields — not the operation).
fn tasks() -> usize {
    let default = if std::env::var("SCALE_REDIS").is_ok() {
        32
    } else {
        2
    };
    env("SCALE_TASKS", default) as usize
}

/// Runs `f(i)` for every i in 0..n from 32 tasks.
async fn fill<F, Fut>(n: usize, f: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let width = tasks();
    let tasks: Vec<_> = (0..width)
        .map(|t| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut i = t;
                while i < n {
                    f(i).await;
                    i += width;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Runs `ops` calls of `f(random unit < n)` from 32 tasks; ops/s, p50 and p99 in µs.
async fn measure<F, Fut>(n: usize, ops: usize, f: F) -> (f64, f64, f64)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let width = tasks();
    let tasks: Vec<_> = (0..width)
        .map(|t| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut seed = 0x5eed ^ (t as u64) << 32;
                let mut took = Vec::with_capacity(ops / width);
                for _ in 0..ops / width {
                    let unit = (next(&mut seed) % n as u64) as usize;
                    let at = Instant::now();
                    f(unit).await;
                    took.push(at.elapsed());
                }
                took
            })
        })
        .collect();
    let mut all = Vec::with_capacity(ops);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e6;
    (all.len() as f64 / secs, pct(0.50), pct(0.99))
}

/// Memory in use now: the process's RSS, or Redis's `used_memory`.
type Probe<'a> = dyn Fn() -> i64 + 'a;

fn with((per_s, p50, p99): (f64, f64, f64), held: i64) -> (f64, f64, f64, i64) {
    (per_s, p50, p99, held)
}

fn subject(i: usize) -> Subject {
    Subject::ip(Ipv4Addr::from(u32::try_from(i).unwrap()).into())
}

/// Rate limit: one decision per key (one GCRA policy).
async fn ratelimit(
    store: Arc<dyn RateLimitStore>,
    n: usize,
    ops: usize,
    memory: &Probe<'_>,
) -> (f64, f64, f64, i64) {
    // A day's quota (1,000, far from reached here): keys stay live through the run (a
    // generous per-second quota's state would expire within microseconds).
    let policies =
        Arc::new(PolicySet::new([Policy::new("day", Quota::per_day(1000)).unwrap()]).unwrap());
    let decide = move |i: usize| {
        let (store, policies) = (Arc::clone(&store), Arc::clone(&policies));
        async move {
            let decision = store.check(&subject(i), &policies, 1).await.unwrap();
            assert!(decision.outcome.is_admitted());
        }
    };
    fill(n, decide.clone()).await;
    let held = memory();
    with(measure(n, ops, decide).await, held)
}

/// Cache: a hit per entry (1 KiB bodies).
async fn cache(
    store: impl tower_parapet::cache::CacheStore,
    n: usize,
    ops: usize,
    memory: &Probe<'_>,
) -> (f64, f64, f64, i64) {
    static BODY: [u8; 1024] = [b'c'; 1024];
    let layer = CacheLayer::builder().store(store).build().unwrap();
    let origin = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        let mut response = Response::new(Full::new(Bytes::from_static(&BODY)));
        response
            .headers_mut()
            .insert("cache-control", "public, max-age=3600".parse().unwrap());
        Ok::<_, Infallible>(response)
    });
    let svc = layer.layer(origin);
    let get = move |hit: bool| {
        let svc = svc.clone();
        move |i: usize| {
            let svc = svc.clone();
            async move {
                let request = Request::get(format!("http://scale.example/item/{i}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let (parts, body) = svc.oneshot(request).await.unwrap().into_parts();
                assert_eq!(body.collect().await.unwrap().to_bytes().len(), 1024);
                if hit {
                    let status = parts.headers["cache-status"].to_str().unwrap();
                    assert!(status.contains("hit"), "{status}");
                }
            }
        }
    };
    fill(n, get(false)).await;
    let held = memory();
    with(measure(n, ops, get(true)).await, held)
}

/// Sessions: each made by a request that stores one field (a 200-byte string), then read
/// by requests carrying its cookie.
async fn sessions(
    store: impl tower_parapet::session::SessionStore,
    n: usize,
    ops: usize,
    memory: &Probe<'_>,
) -> (f64, f64, f64, i64) {
    let layer = SessionLayer::builder()
        .store(Arc::new(store))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/fill",
            post(|session: Session| async move {
                session.insert("cart", &"x".repeat(200)).await.unwrap();
                "ok"
            }),
        )
        .route(
            "/read",
            get(|session: Session| async move {
                let cart: Option<String> = session.get("cart").await.unwrap();
                assert_eq!(cart.map(|c| c.len()), Some(200));
                "ok"
            }),
        )
        .layer(layer);
    let sample = Arc::new(std::sync::Mutex::new(Vec::with_capacity(COOKIE_SAMPLE)));
    let every = n.div_ceil(COOKIE_SAMPLE).max(1);
    fill(n, {
        let (app, sample) = (app.clone(), Arc::clone(&sample));
        move |i| {
            let (app, sample) = (app.clone(), Arc::clone(&sample));
            async move {
                let request = Request::post("/fill").body(Body::empty()).unwrap();
                let response = app.oneshot(request).await.unwrap();
                assert_eq!(response.status(), 200);
                if i % every == 0 {
                    let cookie = response.headers()["set-cookie"].to_str().unwrap();
                    let cookie = cookie.split(';').next().unwrap().to_owned();
                    sample.lock().unwrap().push(cookie);
                }
            }
        }
    })
    .await;
    let held = memory();
    let cookies: Arc<Vec<String>> = Arc::new(std::mem::take(&mut *sample.lock().unwrap()));
    let k = cookies.len();
    let measured = measure(k, ops, move |i| {
        let (app, cookies) = (app.clone(), Arc::clone(&cookies));
        async move {
            let request = Request::get("/read")
                .header("cookie", &cookies[i])
                .body(Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    })
    .await;
    with(measured, held)
}

#[derive(Serialize)]
struct Claims {
    sub: String,
    jti: String,
    iat: u64,
    exp: u64,
}

/// Revocations: N token ids revoked, then valid tokens (1,000 of them, never revoked)
/// checked by the guard.
async fn revocations(n: usize, ops: usize, memory: &Probe<'_>) -> (f64, f64, f64, i64) {
    let revocations = Revocations::builder()
        .max_entries(2 * n + 10)
        .memory()
        .unwrap();
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    fill(n, {
        let revocations = revocations.clone();
        move |i| {
            let revocations = revocations.clone();
            async move {
                revocations
                    .revoke_token_id(None, &format!("revoked-{i}"), exp as f64)
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    let held = memory();
    let now = exp - 3600;
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|i| {
                let claims = Claims {
                    sub: format!("user-{i}"),
                    jti: format!("valid-{i}"),
                    iat: now,
                    exp,
                };
                jsonwebtoken::encode(
                    &Header::default(),
                    &claims,
                    &EncodingKey::from_secret(SECRET),
                )
                .unwrap()
            })
            .collect(),
    );
    let guard = JwtLayer::builder()
        .hs256(SECRET)
        .revocations(revocations)
        .build()
        .unwrap()
        .layer(tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let measured = measure(tokens.len(), ops, move |i| {
        let (guard, tokens) = (guard.clone(), Arc::clone(&tokens));
        async move {
            let request = Request::get("/")
                .header("authorization", format!("Bearer {}", tokens[i]))
                .body(())
                .unwrap();
            let response = guard.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
        }
    })
    .await;
    with(measured, held)
}

const CASES: [&str; 7] = [
    "rate limit, memory",
    "rate limit, Redis",
    "cache, memory",
    "cache, Redis",
    "sessions, memory",
    "sessions, Redis",
    "revocations (guard's replica)",
];

/// Runs one case; prints `ops/s p50 p99 bytes-per-unit`.
async fn run(case: usize, n: usize, ops: usize) {
    let on_redis = CASES[case].contains("Redis");
    let server = on_redis.then(RedisServer::start);
    let probe = || {
        server
            .as_ref()
            .map_or_else(|| harness::rss() as i64, used_memory)
    };
    let memory: &Probe<'_> = &probe;
    let redis = || async {
        let server = server.as_ref().expect("a Redis case has a server");
        RedisHandle::builder(server.url().as_str())
            .timeout(Duration::from_secs(2))
            .build()
            .await
            .unwrap()
    };
    let before = memory();
    let (per_s, p50, p99, held) = match case {
        0 => {
            let store = tower_parapet::ratelimit::MemoryStore::new(2 * n);
            ratelimit(Arc::new(store), n, ops, memory).await
        }
        1 => {
            let store = tower_parapet::ratelimit::RedisStore::new(redis().await).unwrap();
            ratelimit(Arc::new(store), n, ops, memory).await
        }
        2 => {
            cache(
                tower_parapet::cache::MemoryStore::new(4 << 30),
                n,
                ops,
                memory,
            )
            .await
        }
        3 => {
            let store = tower_parapet::cache::RedisStore::new(redis().await).unwrap();
            cache(store, n, ops, memory).await
        }
        4 => {
            let store = tower_parapet::session::MemoryStore::new().anonymous_capacity(2 * n);
            sessions(store, n, ops, memory).await
        }
        5 => {
            let store = tower_parapet::session::RedisStore::new(redis().await)
                .unwrap()
                .anonymous_budget(2 * n);
            sessions(store, n, ops, memory).await
        }
        _ => revocations(n, ops, memory).await,
    };
    println!(
        "{per_s:.0} {p50:.1} {p99:.1} {:.0}",
        (held - before) as f64 / n as f64
    );
}

fn main() {
    let ops = env("SCALE_OPS", 200_000) as usize;
    if let Ok(case) = std::env::var("SCALE_CASE") {
        let (case, n) = case.split_once(':').unwrap();
        harness::runtime().block_on(run(case.parse().unwrap(), n.parse().unwrap(), ops));
        return;
    }
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "1000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let only = std::env::var("SCALE_ONLY").unwrap_or_default();
    let mut report = String::from(
        "| middleware, store | live units | ops/s | p50 µs | p99 µs | bytes per unit |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (case, name) in CASES.iter().enumerate() {
        if !name.contains(&*only) {
            continue;
        }
        for &n in &sizes {
            let mut command = std::process::Command::new(std::env::current_exe().unwrap());
            command
                .arg("--bench")
                .env("SCALE_CASE", format!("{case}:{n}"));
            if name.contains("Redis") {
                command.env("SCALE_REDIS", "1");
            }
            let out = command.output().unwrap();
            assert!(
                out.status.success(),
                "{name} at {n}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8_lossy(&out.stdout);
            let f: Vec<&str> = line.split_whitespace().collect();
            let row = format!(
                "| {name} | {n} | {} | {} | {} | {} |\n",
                f[0], f[1], f[2], f[3]
            );
            print!("{row}");
            report.push_str(&row);
        }
    }
    println!("\n{report}");
    let _ = std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/scale-report.md"),
        &report,
    );
}
