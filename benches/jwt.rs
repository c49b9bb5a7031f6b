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
//! `cargo bench --bench jwt`
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

fn run<S>(c: &mut Criterion, name: &str, mut service: S, headers: &HeaderMap)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut request = Request::new(());
            *request.headers_mut() = headers.clone();
            let response = ready(service.call(black_box(request))).unwrap();
            assert_eq!(response.status(), 200);
        });
    });
}

async fn handler(request: Request<()>) -> Result<Response<()>, Infallible> {
    let token = request.extensions().get::<VerifiedToken>().unwrap();
    black_box(token.claims::<Claims>().unwrap());
    Ok(Response::new(()))
}

fn guard(
    revocations: Revocations,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> {
    let layer = JwtLayer::builder()
        .hs256(SECRET)
        .issuer("bench")
        .revocations(revocations)
        .build()
        .unwrap();
    let service = layer.layer(tower::service_fn(handler));
    tower::util::MapResponse::new(service, |response: Response<_>| response.map(|_| ()))
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
    let decode = tower::service_fn(move |request: Request<()>| {
        let token = request.headers()["authorization"]
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).unwrap();
        black_box(data.claims);
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    });
    run(c, "jsonwebtoken::decode", decode, &headers);

    run(c, "parapet guard", guard(Revocations::memory()), &headers);

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
    run(c, "parapet guard, 1 revoked", guard(one), &headers);

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
    run(c, "parapet guard, 100k revoked", guard(crowded), &headers);
}

criterion_group!(benches, guard_vs_decode);
criterion_main!(benches);
