//! Criterion benches of the response cache's hit path in memory: 1 KiB and 128 KiB bodies
//! (a hit hands out the stored `Bytes` without copying, so both should cost alike), the
//! same handler without the cache as the baseline, and the cost the cache adds to a
//! response it does not store.
//!
//! `cargo bench -p parapet-benches --bench cache`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_parapet::cache::CacheLayer;

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
        async move {
            let mut response = Response::new(Full::new(body));
            response
                .headers_mut()
                .insert("cache-control", cache_control.parse().unwrap());
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            Ok::<_, Infallible>(response)
        }
    })
}

fn request() -> Request<Full<Bytes>> {
    Request::get("http://bench.example/api/products?page=1")
        .header("accept", "application/json")
        .header("user-agent", "bench")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn hits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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

criterion_group!(benches, hits);
criterion_main!(benches);
