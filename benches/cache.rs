//! Criterion benches of the response cache's hit path: in memory, 1 KiB and 128 KiB bodies
//! (a hit hands out the stored `Bytes` without copying, so both should cost alike), the
//! same handler without the cache as the baseline, and the cost the cache adds to a
//! response it does not store. On Redis: a hit, and the floor it is held to — the same
//! handler answering the 1 KiB it reads with one `HMGET` of a hash shaped like the store's
//! entry (the hit's reply shape).
//!
//! `cargo bench -p parapet-benches --bench cache` (starts a `redis-server` for the Redis pair)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_parapet::cache::{CacheLayer, RedisStore};
use tower_parapet::core::{Command, RedisHandle};

#[path = "bench_setup.rs"]
mod bench_setup;

use bench_setup::{current_thread, redis_on_current_thread};

fn handler(
    body: Bytes,
    cache_control: &'static str,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(respond(body, cache_control)) }
    })
}

/// The handlers' answer: `body` as JSON with `cache_control`.
fn respond(body: Bytes, cache_control: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert("cache-control", cache_control.parse().unwrap());
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn request() -> Request<Full<Bytes>> {
    Request::get("http://bench.example/api/products?page=1")
        .header("accept", "application/json")
        .header("user-agent", "bench")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn hits(c: &mut Criterion) {
    let runtime = current_thread();
    let mut group = c.benchmark_group("cache_hit");
    for (name, size) in [("1KiB", 1 << 10), ("128KiB", 128 << 10)] {
        let body = Bytes::from(vec![b'x'; size]);
        let baseline = handler(body.clone(), "public, max-age=600");
        group.bench_function(format!("no cache/{name}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let response = baseline.clone().oneshot(request()).await.unwrap();
                    black_box(response.into_body().collect().await.unwrap());
                })
            })
        });
        let cached = tower::Layer::layer(&CacheLayer::new(), handler(body, "public, max-age=600"));
        runtime.block_on(async {
            let miss = cached.clone().oneshot(request()).await.unwrap();
            miss.into_body().collect().await.unwrap();
        });
        group.bench_function(format!("parapet memory hit/{name}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let response = cached.clone().oneshot(request()).await.unwrap();
                    black_box(response.into_body().collect().await.unwrap());
                })
            })
        });
    }
    let uncacheable = tower::Layer::layer(
        &CacheLayer::new(),
        handler(Bytes::from(vec![b'x'; 1 << 10]), "private"),
    );
    group.bench_function("parapet pass-through (private)/1KiB", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = uncacheable.clone().oneshot(request()).await.unwrap();
                black_box(response.into_body().collect().await.unwrap());
            })
        })
    });
    group.finish();
}

/// The 1 KiB handler that reads its body with one `HMGET` on every request.
fn hmget_handler(
    redis: RedisHandle,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let redis = redis.clone();
        async move {
            let mut read = Command::new("HMGET");
            read.arg("floor:hash")
                .arg("v")
                .arg("d{0123456789abcdef0123456789abcdef}");
            let (_, body): (Option<Vec<u8>>, Option<Vec<u8>>) = redis.query(&read).await.unwrap();
            Ok::<_, Infallible>(respond(Bytes::from(body.unwrap()), "public, max-age=600"))
        }
    })
}

fn redis_hits(c: &mut Criterion) {
    let (runtime, _server, redis) = redis_on_current_thread();
    let mut hset = Command::new("HSET");
    hset.arg("floor:hash")
        .arg("v")
        .arg("")
        .arg("d{0123456789abcdef0123456789abcdef}")
        .arg(vec![b'x'; 1 << 10]);
    let _: i64 = runtime.block_on(redis.query(&hset)).unwrap();
    let mut group = c.benchmark_group("cache_hit");
    let floor = hmget_handler(redis.clone());
    group.bench_function("redis floor: one HMGET/1KiB", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = floor.clone().oneshot(request()).await.unwrap();
                black_box(response.into_body().collect().await.unwrap());
            })
        })
    });
    let layer = CacheLayer::builder()
        .store(RedisStore::new(redis).unwrap())
        .build()
        .unwrap();
    let cached = tower::Layer::layer(
        &layer,
        handler(Bytes::from(vec![b'x'; 1 << 10]), "public, max-age=600"),
    );
    runtime.block_on(async {
        let miss = cached.clone().oneshot(request()).await.unwrap();
        miss.into_body().collect().await.unwrap();
        let hit = cached.clone().oneshot(request()).await.unwrap();
        let status = hit.headers()["cache-status"].to_str().unwrap().to_owned();
        assert!(status.contains("; hit"), "not a hit: {status}");
    });
    group.bench_function("parapet redis hit/1KiB", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = cached.clone().oneshot(request()).await.unwrap();
                black_box(response.into_body().collect().await.unwrap());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, hits, redis_hits);
criterion_main!(benches);
