//! The whole stack under load: `examples/stack.rs` (rate limits, cache, sessions and the
//! JWT guard, behind a trusted proxy, with tower-http's Trace and Compression) served in
//! this process and loaded over loopback by keep-alive HTTP/1.1 connections.
//!
//! Routes, each a ratio to the bare handler (the same small JSON answered by a router with
//! no layers, loaded with the same headers):
//! - `GET /products`, a cache hit: the per-IP limit, a cache lookup, and nothing inside it;
//! - `GET /api/me`, guarded: the per-IP limit, a cache miss (the answer is personal), the
//!   session layer untouched, an HS256 check with revocations, a limit per subject;
//! - `GET /cart`, a logged-in session: the per-IP limit, a cache miss, the session read by
//!   `LoadUserLayer`, a limit per user, the handler reading the same loaded session.
//!
//! Every request comes from another client address (`X-Forwarded-For` from a pool of
//! 65,536), tokens from 16,384 subjects and sessions from 16,384 users, so that no limit
//! refuses anything: the report counts the 429s and other answers to show it. With Redis
//! (`REDIS_URL` set: limits, sessions and revocations there, the cache in memory), every
//! decision is a Redis call.
//!
//! `cargo bench -p parapet-benches --bench stack_load` (env: `LOAD_SECS` per run, default
//! 2; `LOAD_ROUNDS`, default 5; `LOAD_CONNS`, default 32; `LOAD_ONLY`, a substring of the
//! variants to run besides the baseline). The table goes to stdout and
//! `target/stack-load-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // the other harnesses' loaders
mod harness;
#[allow(dead_code)] // its main and what only the binary calls
#[path = "../examples/stack.rs"]
mod stack;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use http::HeaderValue;
use parapet_testkit::RedisServer;
use serde_json::json;

use harness::{Headers, Paired, Settings, load_each, only, publish, runtime, serve};

const ADDRESSES: u64 = 65_536;
const USERS: usize = 16_384;
const JWT_SECRET: &str = "a jwt secret for the stack load harness";

/// The bare handler: the same small JSON on every route, no layers.
fn bare() -> Router {
    let body = || async {
        axum::Json(json!([{ "id": 1, "name": "parapet" }, { "id": 2, "name": "merlon" }]))
    };
    Router::new()
        .route("/products", get(body))
        .route("/api/me", get(body))
        .route("/cart", get(body))
}

fn config(redis_url: Option<String>) -> stack::Config {
    stack::Config {
        redis_url,
        cache_redis_url: None,
        trusted_proxies: vec!["127.0.0.0/8".into()],
        key_secret: Some("a key secret of sixteen bytes or more".into()),
        jwt_secret: Some(JWT_SECRET.into()),
    }
}

/// Client address `n` of the pool, as a load balancer would forward it.
fn forwarded(n: u64) -> HeaderValue {
    let n = n % ADDRESSES;
    HeaderValue::from_str(&format!("10.{}.{}.1", n >> 8, n & 0xff)).unwrap()
}

/// One token per subject, as `POST /api/login` mints them.
fn tokens() -> Vec<HeaderValue> {
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (0..USERS)
        .map(|i| {
            let claims = json!({
                "iss": "parapet-stack", "sub": format!("user{i}"), "jti": format!("{i:032x}"),
                "iat": now_ms as f64 / 1000.0, "exp": now_ms / 1000 + 15 * 60,
            });
            let token =
                jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
        })
        .collect()
}

/// Logs `USERS` users in on `addr`, each from an address of its own (the login limit is
/// per address), and returns their session cookies.
async fn sessions(addr: SocketAddr) -> Vec<HeaderValue> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut cookies = Vec::with_capacity(USERS);
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(64) {
        let mut logins = tokio::task::JoinSet::new();
        for &i in chunk {
            let client = client.clone();
            logins.spawn(async move {
                let request = http::Request::post(format!("http://{addr}/login"))
                    .header("x-forwarded-for", format!("172.16.{}.{}", i >> 8, i & 0xff))
                    .body(format!("shopper{i}").into())
                    .unwrap();
                let response = client.request(request).await.unwrap();
                assert_eq!(response.status(), 200, "login {i}");
                let set = response.headers()["set-cookie"].to_str().unwrap();
                HeaderValue::from_str(set.split(';').next().unwrap()).unwrap()
            });
        }
        cookies.extend(logins.join_all().await);
    }
    cookies
}

struct Variant {
    name: String,
    path: &'static str,
    addr: SocketAddr,
    headers: Headers,
}

/// Each request from the next address of the pool, with `name: values[n % len]`.
fn headers(name: &'static str, values: Vec<HeaderValue>) -> Headers {
    Arc::new(move |_, n| {
        vec![
            ("x-forwarded-for", forwarded(n)),
            (name, values[n as usize % values.len()].clone()),
        ]
    })
}

fn main() {
    let Settings {
        secs,
        rounds,
        conns,
        run,
    } = Settings::from_env(5);
    let server_rt = runtime();
    let redis_server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let variants = server_rt.block_on(async {
        let mut stacks = Vec::new();
        for (backend, redis_url) in [("memory", None), ("redis", Some(redis_server.url()))] {
            let app = stack::app(&config(redis_url)).await.unwrap();
            let addr = serve(app).await;
            stacks.push((backend, addr, sessions(addr).await));
        }
        // Minted once the stacks run: a first start on an empty Redis refuses older tokens.
        let tokens = tokens();
        let mut variants = vec![Variant {
            name: "baseline: the bare handler".into(),
            path: "/products",
            addr: serve(bare()).await,
            headers: headers("authorization", tokens.clone()),
        }];
        for (backend, addr, cookies) in stacks {
            variants.push(Variant {
                name: format!("stack {backend}: GET /products, a cache hit"),
                path: "/products",
                addr,
                headers: headers("authorization", tokens.clone()),
            });
            variants.push(Variant {
                name: format!("stack {backend}: GET /api/me, guarded"),
                path: "/api/me",
                addr,
                headers: headers("authorization", tokens.clone()),
            });
            variants.push(Variant {
                name: format!("stack {backend}: GET /cart, a logged-in session"),
                path: "/cart",
                addr,
                headers: headers("cookie", cookies),
            });
        }
        variants
    });
    let variants = only(variants, |v| v.name.as_str());
    let client_rt = runtime();
    let load = |v: &Variant, run| {
        client_rt.block_on(load_each(v.path, v.addr, conns, run, v.headers.clone()))
    };
    // Warm up, and store the catalog: each run is far shorter than its 30 s of freshness,
    // and every variant is preceded by a request that stores it again when it expired.
    for v in &variants {
        load(v, std::time::Duration::from_millis(300));
    }
    let baseline = &variants[0];
    let mut refused = vec![(0, 0); variants.len()];
    let paired = Paired::run(
        rounds,
        variants.len(),
        || load(baseline, run).0 as f64 / run.as_secs_f64(),
        |i| {
            let v = &variants[i];
            load(v, std::time::Duration::from_millis(50));
            let (ok, limited, other) = load(v, run);
            refused[i].0 += limited;
            refused[i].1 += other;
            ok as f64 / run.as_secs_f64()
        },
    );
    let mut report = String::from(
        "| variant | req/s (median) | × bare handler (median of paired ratios) | min–max ratio | 429s / other non-200s in all rounds |\n|---|---:|---:|---:|---:|\n",
    );
    for (i, v) in variants.iter().enumerate() {
        let (rps, ratio, lo, hi) = paired.summary(i);
        report.push_str(&format!(
            "| {} | {rps:.0} | {ratio:.3} | {lo:.3}–{hi:.3} | {} / {} |\n",
            v.name, refused[i].0, refused[i].1
        ));
    }
    publish(
        "target/stack-load-report.md",
        rounds,
        secs,
        conns,
        "every request from another forwarded address, ",
        &report,
    );
}
