//! Hit ratio of the memory store's eviction on a Zipf(1.0) trace, against moka's TinyLFU
//! and against the store's previous policy (nearest expiry first, which with one lifetime
//! for every entry is oldest stored first: modelled here, as the store no longer has it).
//!
//! 100,000 URLs of 256 B to 4 KiB bodies (each size fixed per URL, independent of its
//! popularity), a store of 5 % of their total weight (`StoredResponse::weight`, the same
//! weights for every policy), a trace of `REQUESTS` (default 2,000,000) requests drawn from
//! Zipf(1.0) over the URLs; the first fifth warms up, the rest is counted. parapet is driven
//! through `CacheLayer` (a miss stores the origin's answer, as in service); moka and the
//! model see the same trace and weights.
//!
//! `cargo bench -p parapet-benches --bench cache_eviction` (env: `REQUESTS`, `KEYS`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // the load helpers are for the other harnesses
mod harness;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};
use tower_parapet::cache::{CacheKey, CacheLayer, CacheStore, Lookup, MemoryStore};

use harness::env;

static BODY: [u8; 4096] = [b'z'; 4096];

/// splitmix64: a small, good generator, seeded for a repeatable trace.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The trace: URL indices drawn from Zipf(1.0), rank `r` having weight `1 / r`, ranks
/// mapped to URLs by a shuffle.
fn trace(keys: usize, requests: usize, rng: &mut Rng) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(keys);
    let mut sum = 0.0;
    for rank in 1..=keys {
        sum += 1.0 / rank as f64;
        cdf.push(sum);
    }
    let mut by_rank: Vec<u32> = (0..keys as u32).collect();
    for i in (1..keys).rev() {
        by_rank.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    (0..requests)
        .map(|_| {
            let u = rng.unit() * sum;
            let rank = cdf.partition_point(|&c| c < u).min(keys - 1);
            by_rank[rank]
        })
        .collect()
}

fn url(i: u32) -> String {
    format!("http://bench.example/item/{i}")
}

fn request(i: u32) -> Request<Full<Bytes>> {
    Request::get(url(i)).body(Full::new(Bytes::new())).unwrap()
}

/// The origin: URL `…/item/<i>` answers `sizes[i]` bytes, fresh for a day.
fn origin(
    sizes: &Arc<Vec<usize>>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ 'static {
    let sizes = Arc::clone(sizes);
    tower::service_fn(move |req: Request<Full<Bytes>>| {
        let i: usize = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let body = Bytes::from_static(&BODY[..sizes[i]]);
        async move {
            let mut response = Response::new(Full::new(body));
            response
                .headers_mut()
                .insert("cache-control", "public, max-age=86400".parse().unwrap());
            Ok::<_, Infallible>(response)
        }
    })
}

/// Runs the trace through a `CacheLayer` on a `MemoryStore` of `capacity` bytes; returns
/// the hits after warm-up.
async fn parapet(sizes: &Arc<Vec<usize>>, capacity: usize, trace: &[u32], warm: usize) -> u64 {
    let origin = origin(sizes);
    let layer = CacheLayer::builder()
        .store(MemoryStore::new(capacity))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(origin);
    let mut warm_hits = 0;
    for (n, &i) in trace.iter().enumerate() {
        if n == warm {
            warm_hits = handle.stats().hits;
        }
        let response = svc.clone().oneshot(request(i)).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
    handle.stats().hits - warm_hits
}

/// moka's TinyLFU, weighed by the same weights.
fn moka(weights: &[u32], capacity: usize, trace: &[u32], warm: usize) -> u64 {
    let cache: moka::sync::Cache<u32, u32> = moka::sync::Cache::builder()
        .max_capacity(capacity as u64)
        .weigher(|_: &u32, weight: &u32| *weight)
        .build();
    let mut hits = 0;
    for (n, &i) in trace.iter().enumerate() {
        if cache.get(&i).is_some() {
            if n >= warm {
                hits += 1;
            }
        } else {
            cache.insert(i, weights[i as usize]);
        }
    }
    hits
}

/// The previous policy, with one lifetime for all: oldest stored first, down to 7/8 of
/// the capacity when an insert would pass it.
fn oldest_first(weights: &[u32], capacity: usize, trace: &[u32], warm: usize) -> u64 {
    let mut present = vec![false; weights.len()];
    let mut order = VecDeque::new();
    let mut bytes = 0usize;
    let mut hits = 0;
    for (n, &i) in trace.iter().enumerate() {
        if present[i as usize] {
            if n >= warm {
                hits += 1;
            }
            continue;
        }
        let w = weights[i as usize] as usize;
        if bytes + w > capacity {
            let target = (capacity - w).min(capacity / 8 * 7);
            while bytes > target {
                let Some(old) = order.pop_front() else { break };
                present[old as usize] = false;
                bytes -= weights[old as usize] as usize;
            }
        }
        present[i as usize] = true;
        order.push_back(i);
        bytes += w;
    }
    hits
}

/// Each URL's weight as the memory store counts it, read back from a store that keeps all.
async fn weights(sizes: &Arc<Vec<usize>>) -> Vec<u32> {
    let all = Arc::new(MemoryStore::new(usize::MAX >> 1));
    let origin = origin(sizes);
    let svc = CacheLayer::builder()
        .store(Arc::clone(&all))
        .build()
        .unwrap()
        .layer(origin);
    let mut weights = Vec::with_capacity(sizes.len());
    for i in 0..sizes.len() as u32 {
        let response = svc.clone().oneshot(request(i)).await.unwrap();
        response.into_body().collect().await.unwrap();
        let key = CacheKey::new("http", "bench.example", &format!("/item/{i}"));
        let found = all
            .lookup(&key, &HeaderMap::new(), SystemTime::now())
            .await
            .unwrap();
        let Lookup::Hit(stored) = found else {
            panic!("{i} was not stored")
        };
        weights.push(u32::try_from(stored.weight()).unwrap());
    }
    weights
}

fn main() {
    let keys = env("KEYS", 100_000) as usize;
    let requests = env("REQUESTS", 2_000_000) as usize;
    let warm = requests / 5;
    let mut rng = Rng(0x5eed);
    let sizes: Arc<Vec<usize>> = Arc::new(
        (0..keys)
            .map(|_| 256 + (rng.next() % (4096 - 256 + 1)) as usize)
            .collect(),
    );
    let trace = trace(keys, requests, &mut rng);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let weights = runtime.block_on(weights(&sizes));
    let total: usize = weights.iter().map(|&w| w as usize).sum();
    let capacity = total / 20;
    let counted = (requests - warm) as f64;
    let started = std::time::Instant::now();
    let ours = runtime.block_on(parapet(&sizes, capacity, &trace, warm));
    let ours_secs = started.elapsed().as_secs_f64();
    let theirs = moka(&weights, capacity, &trace, warm);
    let before = oldest_first(&weights, capacity, &trace, warm);
    let mut report = format!(
        "Zipf(1.0), {keys} URLs, {requests} requests ({} counted), store {capacity} bytes \
         (5 % of {total})\n\n| policy | hit ratio |\n|---|---|\n",
        requests - warm
    );
    for (name, hits) in [
        ("parapet MemoryStore (by use)", ours),
        ("moka 0.12 (TinyLFU)", theirs),
        ("previous: nearest expiry (oldest first)", before),
    ] {
        report.push_str(&format!("| {name} | {:.4} |\n", hits as f64 / counted));
    }
    report.push_str(&format!(
        "\nparapet's run: {ours_secs:.1} s through the layer ({:.2} µs per request)\n",
        ours_secs * 1e6 / requests as f64
    ));
    print!("{report}");
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/cache-eviction-report.md"
        ),
        &report,
    );
}
