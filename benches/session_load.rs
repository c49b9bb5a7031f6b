//! The session load harness: one axum app served in this process and loaded over loopback
//! by keep-alive HTTP/1.1 connections, each with a session of its own. Three routes: one
//! that never touches its session, one that reads a field, one that writes a field. Bare
//! (the baseline, no session layer), behind parapet's `SessionLayer` (memory and Redis)
//! and behind tower-sessions (its memory store, and its Redis store on fred).
//!
//! Each variant runs between two runs of the baseline and is quoted as a ratio to their
//! mean; rounds repeat the sequence and the median ratio is reported. For Redis variants,
//! `INFO commandstats` gives Redis commands per request.
//!
//! `cargo bench -p parapet-benches --bench session_load` (env: `LOAD_SECS` per run, default 2; `LOAD_ROUNDS`,
//! default 3; `LOAD_CONNS`, default 32; `LOAD_ONLY`, a substring of the variants to run
//! besides the baseline). The table goes to stdout and `target/session-load-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // `load` (without cookies) is for the other harnesses
mod harness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use parapet_testkit::RedisServer;
use tower_parapet::core::RedisHandle;
use tower_parapet::session::{RedisStore, SessionLayer};
use tower_sessions::{MemoryStore as TsMemoryStore, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore as TsRedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

#[path = "session_routes.rs"]
mod session_routes;

use session_routes::{floor_hgetall, parapet_routes, tower_sessions_routes};

use harness::{
    Paired, Settings, load_with, median, only, process_cpu_seconds, publish, redis_commands,
    runtime, serve,
};

/// A session of its own for each connection: `GET /login` and the cookie it sets.
async fn sessions(addr: SocketAddr, n: u64) -> Vec<String> {
    let mut cookies = Vec::new();
    for _ in 0..n {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::get("/login")
            .header("host", "bench")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        cookies.push(cookie.split(';').next().unwrap().to_owned());
        response.into_body().collect().await.unwrap();
    }
    cookies
}

struct Variant {
    name: String,
    path: &'static str,
    addr: SocketAddr,
    cookies: Vec<String>,
    redis: bool,
}

/// A floor of a Redis-backed read: the route makes one `GET` on parapet's handle (one
/// redis-rs multiplexed connection) and nothing else.
fn floor_redis_rs(redis: RedisHandle) -> Router {
    Router::new().route(
        "/read",
        axum::routing::get(move || {
            let redis = redis.clone();
            async move {
                let mut get = tower_parapet::core::Command::new("GET");
                get.arg("bench:floor");
                let value: Option<Vec<u8>> = redis.query(&get).await.unwrap();
                assert!(value.is_some(), "the floor's value is there");
                "hello"
            }
        }),
    )
}

/// The same floor on tower-sessions' Redis client: fred's pool of 6.
fn floor_fred(pool: Pool) -> Router {
    use tower_sessions_redis_store::fred::prelude::KeysInterface;
    Router::new().route(
        "/read",
        axum::routing::get(move || {
            let pool = pool.clone();
            async move {
                let value: Option<Vec<u8>> = pool.get("bench:floor").await.unwrap();
                assert!(value.is_some(), "the floor's value is there");
                "hello"
            }
        }),
    )
}

fn main() {
    let Settings {
        secs,
        rounds,
        conns,
        run,
    } = Settings::from_env(3);
    let redis_server = RedisServer::start();
    let server_rt = runtime();
    let url = redis_server.url();
    let variants: Vec<Variant> = server_rt.block_on(async {
        let redis = RedisHandle::builder(url.as_str())
            .timeout(Duration::from_secs(1))
            .build()
            .await
            .unwrap();
        let floor_handle = redis.clone();
        let parapet_redis = RedisStore::new(redis)
            .unwrap()
            .timeout(Duration::from_secs(1))
            .unwrap();
        let pool = Pool::new(Config::from_url(&url).unwrap(), None, None, None, 6).unwrap();
        let _connection = pool.connect();
        pool.wait_for_connect().await.unwrap();
        // What the floors read: 200 bytes, about a small session's record.
        let mut set = tower_parapet::core::Command::new("SET");
        set.arg("bench:floor").arg("x".repeat(200));
        let _: () = floor_handle.query(&set).await.unwrap();
        // And a hash shaped like a session of this bench: 8 fields, about 200 bytes.
        let mut hset = tower_parapet::core::Command::new("HSET");
        hset.arg("bench:floor:hash");
        for (field, value) in [
            ("m:created", "1796663870749"),
            ("m:rot", "1796663870749"),
            ("m:abs", "1796707070749"),
            ("m:seen", "1796663870749"),
            ("m:bytes", "80"),
            ("m:ip", "127.0.0.1"),
            ("m:ua", "bench"),
            ("d:user", "\"someone\""),
        ] {
            hset.arg(field).arg(value);
        }
        let _: () = floor_handle.query(&hset).await.unwrap();
        let apps: Vec<(&str, Router, bool)> = vec![
            ("baseline: no session layer", parapet_routes(), false),
            (
                "parapet memory",
                parapet_routes().layer(SessionLayer::new()),
                false,
            ),
            (
                "tower-sessions memory",
                tower_sessions_routes().layer(SessionManagerLayer::new(TsMemoryStore::default())),
                false,
            ),
            (
                "parapet redis",
                parapet_routes().layer(
                    SessionLayer::builder()
                        .store(parapet_redis)
                        .store_timeout(Duration::from_secs(1))
                        .build()
                        .unwrap(),
                ),
                true,
            ),
            (
                "tower-sessions redis (fred pool of 6)",
                tower_sessions_routes()
                    .layer(SessionManagerLayer::new(TsRedisStore::new(pool.clone()))),
                true,
            ),
            (
                "floor: one GET by parapet's handle (redis-rs)",
                floor_redis_rs(floor_handle.clone()),
                true,
            ),
            ("floor: one GET by fred (pool of 6)", floor_fred(pool), true),
            (
                "floor: one HGETALL of 8 fields by parapet's handle",
                floor_hgetall(floor_handle.clone(), 16),
                true,
            ),
        ];
        let mut variants = Vec::new();
        for (name, app, redis) in apps {
            let addr = serve(app).await;
            let baseline = name.starts_with("baseline");
            let floor = name.starts_with("floor");
            let cookies = if baseline || floor {
                Vec::new()
            } else {
                sessions(addr, conns).await
            };
            let paths: &[&'static str] = match (baseline, redis) {
                _ if floor => &["/read"],
                (true, _) => &["/untouched"],
                (false, false) => &["/untouched", "/read", "/write"],
                (false, true) => &["/read", "/write"],
            };
            for path in paths {
                variants.push(Variant {
                    name: format!("{name}, {}", &path[1..]),
                    path,
                    addr,
                    cookies: cookies.clone(),
                    redis,
                });
            }
        }
        variants
    });
    let variants = only(variants, |v| v.name.as_str());
    let client_rt = runtime();
    for v in &variants {
        client_rt.block_on(load_with(
            v.path,
            v.addr,
            conns,
            Duration::from_millis(300),
            &v.cookies,
        ));
    }
    let baseline = &variants[0];
    let mut per_request: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut redis_cpu: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut app_cpu: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let paired = Paired::run(
        rounds,
        variants.len(),
        || {
            let (ok, _, _) =
                client_rt.block_on(load_with(baseline.path, baseline.addr, conns, run, &[]));
            ok as f64 / run.as_secs_f64()
        },
        |i| {
            let v = &variants[i];
            let before = redis_commands(&redis_server);
            let cpu = redis_server.cpu_seconds();
            let app = process_cpu_seconds();
            let (ok, limited, other) =
                client_rt.block_on(load_with(v.path, v.addr, conns, run, &v.cookies));
            app_cpu
                .entry(i)
                .or_default()
                .push((process_cpu_seconds() - app) * 1e6 / ok as f64);
            assert_eq!(
                (limited, other),
                (0, 0),
                "{}: statuses other than 200",
                v.name
            );
            if v.redis {
                let ran = redis_commands(&redis_server) - before;
                per_request
                    .entry(i)
                    .or_default()
                    .push(ran as f64 / ok as f64);
                let used = redis_server.cpu_seconds() - cpu;
                redis_cpu.entry(i).or_default().push(used * 1e6 / ok as f64);
            }
            ok as f64 / run.as_secs_f64()
        },
    );
    let mut report = String::from(
        "| variant | req/s (median) | × baseline (median of paired ratios) | min–max ratio | Redis commands / request | Redis CPU µs / request | app CPU µs / request (client and server) |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (i, v) in variants.iter().enumerate() {
        let (rps, ratio, lo, hi) = paired.summary(i);
        let cmds = per_request
            .get(&i)
            .map_or("–".to_owned(), |c| format!("{:.3}", median(c.clone())));
        let cpu = redis_cpu
            .get(&i)
            .map_or("–".to_owned(), |c| format!("{:.1}", median(c.clone())));
        let app = app_cpu
            .get(&i)
            .map_or("–".to_owned(), |c| format!("{:.1}", median(c.clone())));
        report.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3}–{:.3} | {} | {} | {} |\n",
            v.name, rps, ratio, lo, hi, cmds, cpu, app
        ));
    }
    publish(
        "target/session-load-report.md",
        rounds,
        secs,
        conns,
        "a session per connection, ",
        &report,
    );
}
