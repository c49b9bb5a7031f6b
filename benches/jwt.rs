//! Criterion benches of the JWT guard against `jsonwebtoken::decode` of the same HS256
//! token, both as a tower service over the same request, both handing the handler the same
//! claims struct:
//!
//! - `jsonwebtoken::decode`: a hand-written middleware: the bearer token out of the header,
//!   `decode::<Claims>` with a `Validation` for HS256, the claims to the handler;
//! - `parapet guard`: `JwtLayer` with in-memory revocations (empty), the handler reading
//!   `VerifiedToken::claims::<Claims>()` as `Claims<T>` does;
//! - `parapet guard, 1 revoked`: one revoked token and one revoked user, so the lookups run
//!   (an empty replica skips them);
//! - `parapet guard, 100k revoked`: the same with 100,000 revoked tokens and 10,000 revoked
//!   users in the replica.
//!
//! Criterion runs them one after another; a paired run then lets them take turns and
//! reports each as a ratio to `jsonwebtoken::decode` (see [`paired`]).
//!
//! `cargo bench -p parapet-benches --bench jwt`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Request, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tower::{Layer, Service};
use tower_parapet::jwt::{JwtLayer, Revocations, VerifiedToken};

const SECRET: &[u8] = b"bench secret, thirty-two bytes at least!";

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Claims {
    iss: String,
    sub: String,
    jti: String,
    iat: u64,
    exp: u64,
    role: String,
}

/// Polls a future that is ready at once (both services here never wait).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the service waited"),
    }
}

fn token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        iss: "bench".into(),
        sub: "alice@example.com".into(),
        jti: "0123456789abcdef0123456789abcdef".into(),
        iat: now,
        exp: now + 900,
        role: "user".into(),
    };
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

type Boxed = tower::util::BoxService<Request<()>, Response<()>, Infallible>;

/// One request through `service`.
fn once(service: &mut Boxed, headers: &HeaderMap) {
    let mut request = Request::new(());
    *request.headers_mut() = headers.clone();
    let response = ready(service.call(black_box(request))).unwrap();
    assert_eq!(response.status(), 200);
}

/// Criterion runs the variants one after another, so a machine that drifts (this one
/// does) skews their comparison. Here the variants take turns in blocks of `BLOCK` calls,
/// each round starting with another, and each block's time is divided by the
/// `jsonwebtoken::decode` block of its round: the median of those ratios is reported.
fn paired(services: &mut [(&str, Boxed)], headers: &HeaderMap) {
    const ROUNDS: usize = 40;
    const BLOCK: u32 = 20_000;
    let mut ratios = vec![Vec::new(); services.len()];
    for round in 0..ROUNDS {
        let mut times = vec![0.0; services.len()];
        for k in 0..services.len() {
            let i = (round + k) % services.len();
            let start = std::time::Instant::now();
            for _ in 0..BLOCK {
                once(&mut services[i].1, headers);
            }
            times[i] = start.elapsed().as_secs_f64();
        }
        for (i, t) in times.iter().enumerate() {
            ratios[i].push(t / times[0]);
        }
    }
    println!("\npaired: {ROUNDS} rounds of {BLOCK} calls per variant, taking turns\n");
    println!("| variant | × jsonwebtoken::decode (median) | 10th–90th percentile |");
    println!("|---|---:|---:|");
    for (i, (name, _)) in services.iter().enumerate() {
        let mut r = ratios[i].clone();
        r.sort_by(f64::total_cmp);
        let at = |q: f64| r[((r.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {name} | {:.3} | {:.3}–{:.3} |",
            at(0.5),
            at(0.1),
            at(0.9)
        );
    }
}

async fn handler(request: Request<()>) -> Result<Response<()>, Infallible> {
    let token = request.extensions().get::<VerifiedToken>().unwrap();
    black_box(token.claims::<Claims>().unwrap());
    Ok(Response::new(()))
}

fn guard(revocations: Revocations) -> Boxed {
    let layer = JwtLayer::builder()
        .hs256(SECRET)
        .issuer("bench")
        .revocations(revocations)
        .build()
        .unwrap();
    let service = layer.layer(tower::service_fn(handler));
    Boxed::new(tower::util::MapResponse::new(
        service,
        |response: Response<_>| response.map(|_| ()),
    ))
}

fn guard_vs_decode(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token())).unwrap(),
    );
    headers.insert("accept", HeaderValue::from_static("application/json"));

    let key = DecodingKey::from_secret(SECRET);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["bench"]);
    let decode = Boxed::new(tower::service_fn(move |request: Request<()>| {
        let token = request.headers()["authorization"]
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).unwrap();
        black_box(data.claims);
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    }));

    // One revoked token and user: the lookups run (an empty replica skips them).
    let one = Revocations::memory();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        one.revoke_token_id(Some("bench"), "revoked", 4e9)
            .await
            .unwrap();
        one.revoke_user("someone-else").await.unwrap();
    });

    let crowded = Revocations::memory();
    runtime.block_on(async {
        for i in 0..100_000u32 {
            crowded
                .revoke_token_id(Some("bench"), &format!("revoked-{i}"), 4e9)
                .await
                .unwrap();
        }
        for i in 0..10_000u32 {
            crowded.revoke_user(&format!("user-{i}")).await.unwrap();
        }
    });
    assert_eq!(crowded.len(), (100_000, 10_000));
    let mut services = [
        ("jsonwebtoken::decode", decode),
        ("parapet guard", guard(Revocations::memory())),
        ("parapet guard, 1 revoked", guard(one)),
        ("parapet guard, 100k revoked", guard(crowded)),
    ];
    for (name, service) in &mut services {
        c.bench_function(name, |b| b.iter(|| once(service, &headers)));
    }
    paired(&mut services, &headers);
}

criterion_group!(benches, guard_vs_decode);
criterion_main!(benches);
