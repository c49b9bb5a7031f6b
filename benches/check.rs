//! Criterion benches of one in-memory rate-limit decision, with governor's keyed check (the
//! engine of tower_governor) measured in the same run as the baseline.
//!
//! `cargo bench -p parapet-benches --bench check`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use tower_parapet::ratelimit::{MemoryStore, Policy, PolicySet, Quota, RateLimitStore, Subject};

fn set(policies: &[(&str, Quota)]) -> PolicySet {
    PolicySet::new(policies.iter().map(|(n, q)| Policy::new(*n, *q).unwrap())).unwrap()
}

fn decide(store: &MemoryStore, subject: &Subject, policies: &PolicySet) -> bool {
    store
        .check(subject, policies, 1)
        .now_or_later()
        .unwrap()
        .unwrap()
        .outcome
        .is_admitted()
}

fn memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("in_memory_check");
    let generous = set(&[("second", Quota::per_second(1_000_000))]);
    let three = set(&[
        ("second", Quota::per_second(1_000_000)),
        ("minute", Quota::per_minute(60_000_000)),
        ("hour", Quota::per_hour(3_600_000_000)),
    ]);
    let store = MemoryStore::new(200_000);
    let one = Subject::ip("192.0.2.1".parse().unwrap());
    group.bench_function("parapet/one_key", |b| {
        b.iter(|| black_box(decide(&store, &one, &generous)))
    });
    group.bench_function("parapet/one_key_3_policies", |b| {
        b.iter(|| black_box(decide(&store, &one, &three)))
    });
    let many: Vec<Subject> = (0..100_000u32)
        .map(|i| Subject::ip(std::net::Ipv4Addr::from(i).into()))
        .collect();
    let mut i = 0;
    group.bench_function("parapet/100k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            black_box(decide(&store, &many[i], &generous))
        })
    });
    let refused = set(&[("hour", Quota::per_hour(1))]);
    decide(&store, &one, &refused);
    group.bench_function("parapet/refused", |b| {
        b.iter(|| black_box(decide(&store, &one, &refused)))
    });

    let quota = GovernorQuota::per_second(NonZeroU32::new(1_000_000).unwrap());
    let governor = RateLimiter::<std::net::IpAddr, _, _>::keyed(quota);
    let ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    group.bench_function("governor/one_key", |b| {
        b.iter(|| black_box(governor.check_key(&ip).is_ok()))
    });
    let ips: Vec<std::net::IpAddr> = (0..100_000u32)
        .map(|i| std::net::Ipv4Addr::from(i).into())
        .collect();
    let mut j = 0;
    group.bench_function("governor/100k_keys", |b| {
        b.iter(|| {
            j = (j + 1) % ips.len();
            black_box(governor.check_key(&ips[j]).is_ok())
        })
    });
    group.finish();
}

/// Polls a future that is ready at once (in-memory decisions and a synchronous handler).
fn now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("not ready at once"),
    }
}

fn layer(c: &mut Criterion) {
    use http::{Request, Response};
    use tower::{Layer, Service, service_fn};
    use tower_parapet::ratelimit::{HeaderStyle, RateLimitLayer};

    let mut group = c.benchmark_group("layer_call");
    let handler = service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new("hello"))
    });
    let request = || {
        let mut request = Request::new(());
        request
            .extensions_mut()
            .insert("192.0.2.1:4000".parse::<std::net::SocketAddr>().unwrap());
        request
    };
    let mut bare = handler;
    group.bench_function("no_limiter", |b| {
        b.iter(|| black_box(now(bare.call(request())).unwrap()))
    });
    for (name, style, quota) in [
        (
            "allowed_ietf_headers",
            HeaderStyle::Ietf,
            Quota::per_second(1_000_000),
        ),
        (
            "allowed_no_headers",
            HeaderStyle::None,
            Quota::per_second(1_000_000),
        ),
        ("denied", HeaderStyle::None, Quota::per_hour(1).burst(1)),
        (
            "denied_ietf_headers",
            HeaderStyle::Ietf,
            Quota::per_hour(1).burst(1),
        ),
    ] {
        let layer = RateLimitLayer::builder()
            .policy("bench", quota)
            .headers(style)
            .build()
            .unwrap();
        let mut service = layer.layer(handler);
        group.bench_function(name, |b| {
            b.iter(|| black_box(now(service.call(request())).unwrap()))
        });
    }
    group.finish();
}

/// tower_governor's layer and parapet's, each keyed by the peer address from axum's
/// `ConnectInfo` and allowing every request, over one handler: the two layers' own cost side
/// by side (`cargo bench -p parapet-benches --bench check -- axum_layer_call`).
fn axum_layer(c: &mut Criterion) {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use http::{Request, Response};
    use tower::{Layer, Service, service_fn};
    use tower_governor::GovernorLayer;
    use tower_governor::governor::GovernorConfigBuilder;
    use tower_parapet::ratelimit::RateLimitLayer;
    use tower_parapet::ratelimit::key::PeerIp;

    let mut group = c.benchmark_group("axum_layer_call");
    let handler = service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
    });
    let peer: std::net::SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let request = || {
        let mut request = Request::new(Body::empty());
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    };
    let mut bare = handler;
    group.bench_function("no_limiter", |b| {
        b.iter(|| black_box(now(bare.call(request())).unwrap()))
    });
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1_000)
        .burst_size(1_000_000)
        .finish()
        .unwrap();
    let mut governor = GovernorLayer::new(config).layer(handler);
    group.bench_function("tower_governor", |b| {
        b.iter(|| black_box(now(governor.call(request())).unwrap()))
    });
    let mut parapet = RateLimitLayer::builder()
        .policy("bench", Quota::per_second(1_000_000))
        .key(PeerIp::from_extension::<ConnectInfo<std::net::SocketAddr>>())
        .build()
        .unwrap()
        .layer(handler);
    group.bench_function("parapet_memory", |b| {
        b.iter(|| black_box(now(parapet.call(request())).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, memory, layer, axum_layer);
criterion_main!(benches);
