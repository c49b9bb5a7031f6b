//! The cache load harness: one axum app answering a 1 KiB JSON body with
//! `Cache-Control: public, max-age=600`, served in this process and loaded over loopback by
//! keep-alive HTTP/1.1 connections — bare (the baseline), and behind parapet's cache (memory
//! and Redis), tower-http-cache and http-cache-tower-server (moka). Every cached variant is
//! a hit on every request after the warm-up. The Redis floors are the same route answering
//! the same 1 KiB read from Redis with one command per request, on the same kind of
//! connection: a `GET` of a string, and an `HMGET` of a hash shaped like the store's entry
//! (the hit's reply shape). What a Redis hit cannot beat.
//!
//! Each variant runs between two runs of the baseline and is quoted as a ratio to their
//! mean; rounds repeat the sequence and the median ratio is reported. Per request: Redis
//! commands (`INFO commandstats`) and CPU (`INFO cpu`) for the Redis variants, and the
//! process's CPU (client and server) for every variant.
//!
//! `cargo bench -p parapet-benches --bench cache_load` (env: `LOAD_SECS` per run, default 2; `LOAD_ROUNDS`,
//! default 5; `LOAD_CONNS`, default 32; `LOAD_ONLY`, a substring of the variants to run besides
//! the baseline). The table goes to stdout and
//! `target/cache-load-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

mod harness;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::response::Response;
use axum::routing::get;
use axum::{BoxError, Router};
use bytes::Bytes;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use parapet_testkit::RedisServer;
use sync_wrapper::SyncWrapper;
use tower::ServiceBuilder;
use tower_parapet::cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};
use tower_parapet::core::{Command, RedisHandle};

use harness::{Paired, Settings, load, median, only, process_cpu_seconds, publish, runtime, serve};

const PATH: &str = "/api/products";

/// The handler, counting its calls (a cached variant must not call it after the warm-up).
fn products(calls: Arc<AtomicU64>) -> Router {
    let body = Bytes::from(vec![b'x'; 1024]);
    Router::new().route(
        PATH,
        get(move || {
            calls.fetch_add(1, Ordering::Relaxed);
            let body = body.clone();
            async move {
                (
                    [
                        ("cache-control", "public, max-age=600"),
                        ("content-type", "application/json"),
                    ],
                    body,
                )
            }
        }),
    )
}

fn parapet(calls: Arc<AtomicU64>, store: Option<RedisStore>) -> Router {
    let mut builder = CacheLayer::builder();
    if let Some(store) = store {
        builder = builder.store(store);
    }
    products(calls).layer(builder.build().unwrap())
}

/// tower-http-cache needs a `Sync` response body with an exact size hint (axum's is not
/// `Sync`); this wrapper gives it one.
struct SyncBody {
    inner: SyncWrapper<Body>,
    hint: SizeHint,
}

impl http_body::Body for SyncBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(self.get_mut().inner.get_mut()).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

fn tower_http_cache(calls: Arc<AtomicU64>) -> Router {
    use tower_http_cache::CacheLayer;
    use tower_http_cache::backend::memory::InMemoryBackend;
    // Its TTL comes from configuration, not from max-age.
    let cache = CacheLayer::builder(InMemoryBackend::new(10_000))
        .ttl(Duration::from_secs(600))
        .build();
    products(calls).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|e: BoxError| async move {
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }))
            .layer(cache)
            .map_response(|r: Response| {
                r.map(|body| {
                    let hint = http_body::Body::size_hint(&body);
                    SyncBody {
                        inner: SyncWrapper::new(body),
                        hint,
                    }
                })
            }),
    )
}

fn http_cache_tower_server(calls: Arc<AtomicU64>) -> Router {
    use http_cache::{MokaCache, MokaManager};
    use http_cache_tower_server::{QueryKeyer, ServerCacheLayer};
    let cache = ServerCacheLayer::with_keyer(MokaManager::new(MokaCache::new(10_000)), QueryKeyer);
    products(calls).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|e: BoxError| async move {
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }))
            .layer(cache),
    )
}

/// Builds one variant's app around the call counter (and a Redis store, for those on Redis).
type MakeApp = fn(Arc<AtomicU64>, Option<RedisStore>) -> Router;

/// The floors: the route answers the 1 KiB body it reads from Redis, one command per
/// request — a `GET` of a string, or an `HMGET` of two fields of a hash shaped like the
/// store's entry (a short `v` field and the 1 KiB one), which has the hit's reply shape.
async fn one_read(redis: RedisHandle, hmget: bool) -> Router {
    let mut set = Command::new("SET");
    set.arg("floor:body").arg(vec![b'x'; 1024]);
    let _: () = redis.query(&set).await.unwrap();
    let mut hset = Command::new("HSET");
    hset.arg("floor:hash")
        .arg("v")
        .arg("")
        .arg("d{0123456789abcdef0123456789abcdef}")
        .arg(vec![b'x'; 1024]);
    let _: i64 = redis.query(&hset).await.unwrap();
    Router::new().route(
        PATH,
        get(move || {
            let redis = redis.clone();
            async move {
                let body: Vec<u8> = if hmget {
                    let mut read = Command::new("HMGET");
                    read.arg("floor:hash")
                        .arg("v")
                        .arg("d{0123456789abcdef0123456789abcdef}");
                    let (_, body): (Option<Vec<u8>>, Option<Vec<u8>>) =
                        redis.query(&read).await.unwrap();
                    body.unwrap()
                } else {
                    let mut read = Command::new("GET");
                    read.arg("floor:body");
                    redis.query(&read).await.unwrap()
                };
                (
                    [
                        ("cache-control", "public, max-age=600"),
                        ("content-type", "application/json"),
                    ],
                    Bytes::from(body),
                )
            }
        }),
    )
}

struct Variant {
    name: &'static str,
    addr: std::net::SocketAddr,
    calls: Arc<AtomicU64>,
    /// The Redis command counted per request, if any.
    counted: Option<&'static str>,
    /// Its handler runs on every request (the floor), not a cache hit.
    floor: bool,
}

fn main() {
    let Settings {
        secs,
        rounds,
        conns,
        run,
    } = Settings::from_env(5);
    let redis_server = RedisServer::start();
    let server_rt = runtime();
    let url = redis_server.url();
    let variants: Vec<Variant> = server_rt.block_on(async {
        let redis = RedisHandle::builder(url.as_str())
            .timeout(Duration::from_secs(1))
            .build()
            .await
            .unwrap();
        let store = RedisStore::new(redis.clone())
            .unwrap()
            .timeout(Duration::from_secs(1))
            .unwrap();
        let make: Vec<(&'static str, bool, MakeApp)> = vec![
            ("baseline: the handler, no cache", false, |c, _| products(c)),
            ("parapet memory, hit", false, parapet),
            ("parapet redis, hit", true, parapet),
            (
                "parapet tiered (memory in front of redis), hit",
                false,
                |c, store| {
                    let store = store.expect("a Redis store");
                    products(c).layer(
                        CacheLayer::builder()
                            .store(TieredStore::new(MemoryStore::new(64 << 20), store))
                            .build()
                            .unwrap(),
                    )
                },
            ),
            ("tower-http-cache (moka), hit", false, |c, _| {
                tower_http_cache(c)
            }),
            ("http-cache-tower-server (moka), hit", false, |c, _| {
                http_cache_tower_server(c)
            }),
        ];
        let mut v = Vec::new();
        for (name, redis, build) in make {
            let calls = Arc::new(AtomicU64::new(0));
            let app = build(
                Arc::clone(&calls),
                Some(store.clone()).filter(|_| redis || name.contains("tiered")),
            );
            v.push(Variant {
                name,
                addr: serve(app).await,
                calls,
                counted: redis.then_some("hmget"),
                floor: false,
            });
        }
        v.push(Variant {
            name: "floor: the handler reads the 1 KiB from Redis (one GET)",
            addr: serve(one_read(redis.clone(), false).await).await,
            calls: Arc::new(AtomicU64::new(0)),
            counted: Some("get"),
            floor: true,
        });
        v.push(Variant {
            name: "floor: the handler reads the 1 KiB with one HMGET of the store's shape",
            addr: serve(one_read(redis.clone(), true).await).await,
            calls: Arc::new(AtomicU64::new(0)),
            counted: Some("hmget"),
            floor: true,
        });
        v
    });
    // LOAD_ONLY=substring (or a|b) keeps the baseline and the variants whose name contains it.
    let variants = only(variants, |v| v.name);
    let client_rt = runtime();
    for variant in &variants {
        client_rt.block_on(load(PATH, variant.addr, conns, Duration::from_millis(300)));
        // http-cache-tower-server stores in a spawned task after the first response.
        std::thread::sleep(Duration::from_millis(100));
    }
    let warm: Vec<u64> = variants
        .iter()
        .map(|v| v.calls.load(Ordering::Relaxed))
        .collect();
    let baseline = variants[0].addr;
    let mut commands: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut redis_cpu: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut app_cpu: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let per_sec = |(ok, _, _): (u64, u64, u64)| ok as f64 / run.as_secs_f64();
    let paired = Paired::run(
        rounds,
        variants.len(),
        || per_sec(client_rt.block_on(load(PATH, baseline, conns, run))),
        |i| {
            let variant = &variants[i];
            let before = variant.counted.map(|c| redis_server.command_calls(c));
            let cpu = redis_server.cpu_seconds();
            let app = process_cpu_seconds();
            let (ok, limited, other) = client_rt.block_on(load(PATH, variant.addr, conns, run));
            app_cpu
                .entry(i)
                .or_default()
                .push((process_cpu_seconds() - app) * 1e6 / ok as f64);
            assert_eq!(
                (limited, other),
                (0, 0),
                "{}: statuses other than 200",
                variant.name
            );
            if let (Some(counted), Some(before)) = (variant.counted, before) {
                let calls = redis_server.command_calls(counted) - before;
                commands
                    .entry(i)
                    .or_default()
                    .push(calls as f64 / ok as f64);
                let used = redis_server.cpu_seconds() - cpu;
                redis_cpu.entry(i).or_default().push(used * 1e6 / ok as f64);
            }
            ok as f64 / run.as_secs_f64()
        },
    );
    for (variant, warm) in variants.iter().zip(warm).skip(1).filter(|(v, _)| !v.floor) {
        assert_eq!(
            variant.calls.load(Ordering::Relaxed),
            warm,
            "{}: the handler ran after the warm-up (not a hit)",
            variant.name
        );
    }
    let mut report = String::from(
        "| variant | req/s (median) | × baseline (median of paired ratios) | min–max ratio | Redis commands / request | Redis CPU µs / request | app CPU µs / request (client and server) |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (i, variant) in variants.iter().enumerate() {
        let (rps, ratio, lo, hi) = paired.summary(i);
        let cmds = commands
            .get(&i)
            .map_or("–".to_owned(), |c| format!("{:.3}", median(c.clone())));
        let per = |m: &BTreeMap<usize, Vec<f64>>| {
            m.get(&i)
                .map_or("–".to_owned(), |c| format!("{:.1}", median(c.clone())))
        };
        report.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3}–{:.3} | {} | {} | {} |\n",
            variant.name,
            rps,
            ratio,
            lo,
            hi,
            cmds,
            per(&redis_cpu),
            per(&app_cpu)
        ));
    }
    publish(
        "target/cache-load-report.md",
        rounds,
        secs,
        conns,
        "1 KiB body, ",
        &report,
    );
}
