//! The load harness: one axum hello-world app, served in this process, loaded over loopback
//! by keep-alive HTTP/1.1 connections, with and without rate limiters.
//!
//! Every variant runs between two runs of the no-limiter baseline and is quoted as a ratio to
//! their mean; rounds repeat the sequence and the median ratio is reported, so that the
//! drifts of a shared 2-core machine cancel out as far as they can. For Redis variants, Redis's own `INFO commandstats`
//! gives the script calls per request.
//!
//! `cargo bench -p parapet-benches --bench load` (env: `LOAD_SECS` per run, default 2; `LOAD_ROUNDS`, default 5;
//! `LOAD_CONNS`, default 32; `LOAD_ONLY`, a substring of the variants to run besides the
//! baseline). The table goes to stdout and `target/load-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

mod harness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use parapet_testkit::RedisServer;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_parapet::core::RedisHandle;
use tower_parapet::ratelimit::{
    HeaderStyle, HotKeyStore, Quota, RateLimitLayer, RateLimitStore, RedisStore,
};

use harness::{
    Paired, Settings, load_with_header, median, only, process_cpu_seconds, publish, runtime, serve,
};

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Baseline,
    Allowed,
    Denied,
}

struct Variant {
    name: String,
    path: Path,
    addr: SocketAddr,
    redis: bool,
    /// Keyed by the `x-client` header, one value per connection (32 keys), instead of
    /// the peer address (one key).
    many_keys: bool,
}

fn hello() -> Router {
    Router::new().route("/", get(|| async { "hello, world" }))
}

/// A handler that answers what parapet's deny path answers (same status, fields and body),
/// to tell the cost of the response from the cost of the limiter.
fn reference_429() -> Router {
    use tower_parapet::ratelimit::{Rejection, RejectionKind};
    Router::new().route(
        "/",
        get(|| async {
            let rejection = Rejection {
                kind: RejectionKind::Limited,
                retry_after: Some(Duration::from_secs(3600)),
                violated_policies: vec!["bench".into()],
            };
            let mut response = rejection.default_response().map(axum::body::Body::from);
            response
                .headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("3600"));
            response
        }),
    )
}

fn governor(path: Path, headers: bool) -> Router {
    let mut builder = GovernorConfigBuilder::default();
    match path {
        // One token per microsecond, a million at once: never limits.
        Path::Allowed => builder.per_nanosecond(1_000).burst_size(1_000_000),
        // One per hour.
        _ => builder.period(Duration::from_secs(3600)).burst_size(1),
    };
    if headers {
        hello().layer(GovernorLayer::new(builder.use_headers().finish().unwrap()))
    } else {
        hello().layer(GovernorLayer::new(builder.finish().unwrap()))
    }
}

fn quota(path: Path) -> Quota {
    match path {
        Path::Allowed => Quota::per_second(1_000_000),
        _ => Quota::per_hour(1).burst(1),
    }
}

/// A fixed window that never limits here (3e9 an hour; a window admits fewer than it has µs).
fn fixed_window() -> Quota {
    Quota::per_hour(3_000_000_000).fixed_window()
}

/// A sliding window that never limits here: 10,000 (the largest sliding rate) per 50 ms,
/// 200,000 a second, so the one key (every connection comes from 127.0.0.1) keeps a log of
/// the last 50 ms of requests. (100 ms refused requests once the baseline passed 150,000/s.)
fn sliding_window() -> Quota {
    Quota::new(10_000, Duration::from_millis(50)).sliding_window()
}

/// The floor of a Redis-backed limiter: a handler that makes one plain `GET` round trip on
/// the same kind of connection (parapet's handle: one redis-rs multiplexed connection).
fn floor(redis: RedisHandle) -> Router {
    Router::new().route(
        "/",
        get(move || {
            let redis = redis.clone();
            async move {
                let mut get = tower_parapet::core::Command::new("GET");
                get.arg("bench:floor");
                let _: Option<String> = redis.query(&get).await.unwrap();
                "hello, world"
            }
        }),
    )
}

fn parapet_memory(quota: Quota, style: HeaderStyle) -> Router {
    let layer = RateLimitLayer::builder()
        .policy("bench", quota)
        .headers(style)
        .key(tower_parapet::ratelimit::key::PeerIp::from_extension::<
            axum::extract::ConnectInfo<SocketAddr>,
        >())
        .build()
        .unwrap();
    hello().layer(layer)
}

fn redis_store(redis: RedisHandle) -> RedisStore {
    RedisStore::new(redis)
        .unwrap()
        .timeout(Duration::from_secs(1))
        .unwrap()
}

fn parapet_redis(quota: Quota, redis: RedisHandle, deny_cache: bool) -> Router {
    parapet_on(quota, redis_store(redis), deny_cache)
}

fn parapet_on(quota: Quota, store: impl RateLimitStore, deny_cache: bool) -> Router {
    let layer = RateLimitLayer::builder()
        .policy("bench", quota)
        .key(tower_parapet::ratelimit::key::PeerIp::from_extension::<
            axum::extract::ConnectInfo<SocketAddr>,
        >())
        .store(store)
        .deny_cache(if deny_cache { 10_000 } else { 0 })
        .build()
        .unwrap();
    hello().layer(layer)
}

/// A limiter keyed by the `x-client` header: each connection of the harness is its own key.
fn parapet_by_header(store: impl RateLimitStore) -> Router {
    let layer = RateLimitLayer::builder()
        .policy("bench", quota(Path::Allowed))
        .key(tower_parapet::ratelimit::key::HeaderKey::new(
            http::HeaderName::from_static("x-client"),
        ))
        .store(store)
        .deny_cache(10_000)
        .build()
        .unwrap();
    hello().layer(layer)
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
        let multiplexed = RedisHandle::builder(url.clone())
            .timeout(Duration::from_secs(1))
            .build()
            .await
            .unwrap();
        let pool = RedisHandle::builder(url.clone())
            .timeout(Duration::from_secs(1))
            .pool(16)
            .build()
            .await
            .unwrap();
        let table: Vec<(&str, Path, Router, bool)> = vec![
            ("baseline (no limiter)", Path::Baseline, hello(), false),
            (
                "reference: handler returning parapet's 429",
                Path::Baseline,
                reference_429(),
                false,
            ),
            (
                "tower_governor, allowed",
                Path::Allowed,
                governor(Path::Allowed, false),
                false,
            ),
            (
                "parapet memory, allowed",
                Path::Allowed,
                parapet_memory(quota(Path::Allowed), HeaderStyle::None),
                false,
            ),
            (
                "tower_governor + x-ratelimit headers, allowed",
                Path::Allowed,
                governor(Path::Allowed, true),
                false,
            ),
            (
                "parapet memory + IETF fields, allowed",
                Path::Allowed,
                parapet_memory(quota(Path::Allowed), HeaderStyle::Ietf),
                false,
            ),
            (
                "parapet redis multiplexed, allowed",
                Path::Allowed,
                parapet_redis(quota(Path::Allowed), multiplexed.clone(), true),
                true,
            ),
            (
                "parapet redis multiplexed, 32 keys, allowed",
                Path::Allowed,
                parapet_by_header(redis_store(multiplexed.clone())),
                true,
            ),
            (
                "parapet redis multiplexed, 32 keys, unbatched, allowed",
                Path::Allowed,
                parapet_by_header(redis_store(multiplexed.clone()).unbatched()),
                true,
            ),
            (
                "parapet redis multiplexed, unbatched, allowed",
                Path::Allowed,
                parapet_on(
                    quota(Path::Allowed),
                    redis_store(multiplexed.clone()).unbatched(),
                    true,
                ),
                true,
            ),
            (
                "floor: one Redis GET per request (multiplexed)",
                Path::Allowed,
                floor(multiplexed.clone()),
                true,
            ),
            (
                "parapet memory fixed window, allowed",
                Path::Allowed,
                parapet_memory(fixed_window(), HeaderStyle::None),
                false,
            ),
            (
                "parapet redis fixed window, allowed",
                Path::Allowed,
                parapet_redis(fixed_window(), multiplexed.clone(), true),
                true,
            ),
            (
                "parapet memory sliding window, allowed",
                Path::Allowed,
                parapet_memory(sliding_window(), HeaderStyle::None),
                false,
            ),
            (
                "parapet redis sliding window, allowed",
                Path::Allowed,
                parapet_redis(sliding_window(), multiplexed.clone(), true),
                true,
            ),
            (
                "parapet redis hot-key leases (HotKeyStore, 50 ms), allowed",
                Path::Allowed,
                parapet_on(
                    quota(Path::Allowed),
                    HotKeyStore::new(redis_store(multiplexed.clone()), Duration::from_millis(50))
                        .unwrap(),
                    true,
                ),
                true,
            ),
            (
                "parapet redis pool, allowed",
                Path::Allowed,
                parapet_redis(quota(Path::Allowed), pool, true),
                true,
            ),
            (
                "tower_governor, denied",
                Path::Denied,
                governor(Path::Denied, false),
                false,
            ),
            (
                "parapet memory, denied",
                Path::Denied,
                parapet_memory(quota(Path::Denied), HeaderStyle::None),
                false,
            ),
            (
                "parapet redis, denied (deny cache)",
                Path::Denied,
                parapet_redis(quota(Path::Denied), multiplexed.clone(), true),
                true,
            ),
            (
                "parapet redis, denied (no deny cache)",
                Path::Denied,
                parapet_redis(quota(Path::Denied), multiplexed, false),
                true,
            ),
        ];
        let mut v = Vec::new();
        for (name, path, app, redis) in table {
            v.push(Variant {
                many_keys: name.contains("32 keys"),
                name: name.to_owned(),
                path,
                addr: serve(app).await,
                redis,
            });
        }
        v
    });

    // LOAD_ONLY=substring (or a|b) keeps the baseline and the variants whose name contains it.
    let variants = only(variants, |v| &v.name);
    let client_rt = runtime();
    let clients: Vec<String> = (0..conns).map(|i| format!("client-{i}")).collect();
    let load_variant = |variant: &Variant, run: Duration| {
        let values: &[String] = if variant.many_keys { &clients } else { &[] };
        client_rt.block_on(load_with_header(
            "/",
            variant.addr,
            conns,
            run,
            "x-client",
            values,
        ))
    };
    // Warm-up: connections, script load, JIT-free but caches and allocators.
    for variant in &variants {
        load_variant(variant, Duration::from_millis(300));
    }
    // One run of `variant`: its counts, and this process's CPU per request (µs).
    let measure = |variant: &Variant| {
        let before = process_cpu_seconds();
        let (ok, limited, other) = load_variant(variant, run);
        let app = process_cpu_seconds() - before;
        let total = (ok + limited + other).max(1);
        ((ok, limited, other), app * 1e6 / total as f64)
    };
    let mut limited_share: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut calls_per_request: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut redis_cpu: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    // This process's CPU (load client and server) per request, µs.
    let app_cpu = std::cell::RefCell::new(BTreeMap::<usize, Vec<f64>>::new());
    limited_share.entry(0).or_default().push(0.0);
    let per_sec = |(ok, limited, _): (u64, u64, u64)| (ok + limited) as f64 / run.as_secs_f64();
    let paired = Paired::run(
        rounds,
        variants.len(),
        || {
            let (counts, app) = measure(&variants[0]);
            app_cpu.borrow_mut().entry(0).or_default().push(app);
            per_sec(counts)
        },
        |i| {
            let variant = &variants[i];
            let evalsha = redis_server.command_calls("evalsha");
            let cpu = redis_server.cpu_seconds();
            let ((ok, limited, other), app) = measure(variant);
            let calls = redis_server.command_calls("evalsha") - evalsha;
            let cpu = redis_server.cpu_seconds() - cpu;
            assert_eq!(other, 0, "{}: unexpected statuses", variant.name);
            let total = ok + limited;
            app_cpu.borrow_mut().entry(i).or_default().push(app);
            limited_share
                .entry(i)
                .or_default()
                .push(limited as f64 / total as f64);
            if variant.redis {
                calls_per_request
                    .entry(i)
                    .or_default()
                    .push(calls as f64 / total as f64);
                redis_cpu
                    .entry(i)
                    .or_default()
                    .push(cpu * 1e6 / total as f64);
            }
            match variant.path {
                Path::Allowed => {
                    assert_eq!(limited, 0, "{}: the allowed path refused", variant.name)
                }
                Path::Denied => assert!(ok <= 1, "{}: the denied path admitted {ok}", variant.name),
                Path::Baseline => {}
            }
            total as f64 / run.as_secs_f64()
        },
    );

    let mut report = String::from(
        "| variant | req/s (median) | × baseline (median of paired ratios) | min–max ratio | 429 share | script calls / request | Redis CPU µs / request | app CPU µs / request |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let app_cpu = app_cpu.into_inner();
    for (i, variant) in variants.iter().enumerate() {
        let (rps, ratio, lo, hi) = paired.summary(i);
        let app = median(app_cpu[&i].clone());
        let calls = calls_per_request
            .get(&i)
            .map_or("–".to_owned(), |c| format!("{:.3}", median(c.clone())));
        let cpu = redis_cpu
            .get(&i)
            .map_or("–".to_owned(), |c| format!("{:.1}", median(c.clone())));
        report.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3}–{:.3} | {:.1}% | {} | {} | {:.1} |\n",
            variant.name,
            rps,
            ratio,
            lo,
            hi,
            100.0 * median(limited_share[&i].clone()),
            calls,
            cpu,
            app
        ));
    }
    publish("target/load-report.md", rounds, secs, conns, "", &report);
}
