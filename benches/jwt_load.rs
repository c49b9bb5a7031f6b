//! The JWT load harness: one route, `GET /me`, answering the token's `sub`, served in this
//! process and loaded over loopback by keep-alive HTTP/1.1 connections, each sending its
//! own HS256 token (`sub`, `jti`, `iat`, `exp`, `iss`, `aud`, `role`). Variants: no guard and no
//! token (the baseline), parapet's `JwtLayer` with revocations in memory, on Redis (the
//! replica: zero round trips) and in memory with 100,000 revoked tokens, jwt-authorizer
//! 0.15 (on its own axum 0.7 server: it does not layer onto axum 0.8; that server without
//! a guard is measured too) and axum-jwt-auth 0.7 (axum 0.8, jsonwebtoken 10).
//!
//! Then the propagation of a revocation: four instances with revocations on one Redis; a
//! token is revoked on one (round robin) and the time until each other instance refuses
//! it is recorded; p50 / p99 / max are reported.
//!
//! `cargo bench -p parapet-benches --bench jwt_load` (env: `LOAD_SECS` per run, default 2; `LOAD_ROUNDS`,
//! default 3; `LOAD_CONNS`, default 32; `LOAD_ONLY`, a substring of the variants to run
//! besides the baseline; `PROPAGATIONS`, default 300). The table goes to stdout and
//! `target/jwt-load-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // `load` and `load_with` are for the other harnesses
mod harness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use http::Request;
use jsonwebtoken::{EncodingKey, Header};
use parapet_testkit::RedisServer;
use tower::{Layer, ServiceExt};
use tower_parapet::core::RedisHandle;
use tower_parapet::jwt::{Claims, JwtLayer, Revocations};

use harness::{
    Paired, Settings, env, load_with_header, median, only, publish, redis_commands, runtime, serve,
};

const SECRET: &str = "bench secret, thirty-two bytes at least!";

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct UserClaims {
    iss: String,
    aud: String,
    sub: String,
    jti: String,
    iat: u64,
    exp: u64,
    role: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `Authorization` values, one token per connection.
fn tokens(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let claims = UserClaims {
                iss: "bench".into(),
                aud: "bench".into(),
                sub: format!("user-{i}@example.com"),
                jti: format!("{i:032x}"),
                iat: now(),
                exp: now() + 3600,
                role: "user".into(),
            };
            let token = jsonwebtoken::encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap();
            format!("Bearer {token}")
        })
        .collect()
}

fn parapet(revocations: Revocations) -> Router {
    let guard = JwtLayer::builder()
        .hs256(SECRET)
        .issuer("bench")
        .audience("bench")
        .revocations(revocations)
        .build()
        .unwrap();
    Router::new()
        .route(
            "/me",
            get(|Claims(c): Claims<UserClaims>| async move { c.sub }),
        )
        .layer(guard)
}

/// Serves an axum 0.7 router on its own listener.
async fn serve07(app: axum07::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum07::serve(listener, app).await.unwrap() });
    addr
}

async fn jwt_authorizer() -> SocketAddr {
    use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims, Validation};
    let authorizer = JwtAuthorizer::<UserClaims>::from_secret(SECRET)
        .validation(Validation::new().iss(&["bench"]).aud(&["bench"]))
        .build()
        .await
        .unwrap();
    let app = axum07::Router::new()
        .route(
            "/me",
            axum07::routing::get(|JwtClaims(c): JwtClaims<UserClaims>| async move { c.sub }),
        )
        .layer(authorizer.into_layer());
    serve07(app).await
}

fn axum_jwt_auth() -> Router {
    use axum_jwt_auth::{Decoder, LocalDecoder};
    let mut validation = jsonwebtoken10::Validation::new(jsonwebtoken10::Algorithm::HS256);
    validation.set_issuer(&["bench"]);
    validation.set_audience(&["bench"]);
    let decoder: Decoder<UserClaims> = Arc::new(
        LocalDecoder::builder()
            .keys(vec![jsonwebtoken10::DecodingKey::from_secret(
                SECRET.as_bytes(),
            )])
            .validation(validation)
            .build()
            .unwrap(),
    );
    Router::new()
        .route(
            "/me",
            get(|c: axum_jwt_auth::Claims<UserClaims>| async move { c.claims.sub }),
        )
        .with_state(decoder)
}

async fn crowded() -> Revocations {
    let revocations = Revocations::memory();
    for i in 0..100_000u32 {
        revocations
            .revoke_token_id(
                Some("bench"),
                &format!("revoked-{i}"),
                (now() + 3600) as f64,
            )
            .await
            .unwrap();
    }
    revocations
}

struct Variant {
    name: &'static str,
    addr: SocketAddr,
    tokens: bool,
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
        // A fresh Redis of the bench's own, and tokens minted before it: trust it as new.
        let on_redis = Revocations::builder()
            .trust_empty_store(true)
            .redis(redis)
            .unwrap();
        assert!(on_redis.wait_current(Duration::from_secs(5)).await);
        let baseline = Router::new().route("/me", get(|| async { "user-0@example.com" }));
        vec![
            Variant {
                name: "baseline: no guard, no token",
                addr: serve(baseline).await,
                tokens: false,
            },
            Variant {
                name: "parapet, memory revocations",
                addr: serve(parapet(Revocations::memory())).await,
                tokens: true,
            },
            Variant {
                name: "parapet, Redis revocations (replica)",
                addr: serve(parapet(on_redis)).await,
                tokens: true,
            },
            Variant {
                name: "parapet, 100k revoked tokens",
                addr: serve(parapet(crowded().await)).await,
                tokens: true,
            },
            Variant {
                name: "axum 0.7, no guard, no token (jwt-authorizer's server)",
                addr: serve07(axum07::Router::new().route(
                    "/me",
                    axum07::routing::get(|| async { "user-0@example.com" }),
                ))
                .await,
                tokens: false,
            },
            Variant {
                name: "jwt-authorizer 0.15 (axum 0.7)",
                addr: jwt_authorizer().await,
                tokens: true,
            },
            Variant {
                name: "axum-jwt-auth 0.7",
                addr: serve(axum_jwt_auth()).await,
                tokens: true,
            },
        ]
    });
    let variants = only(variants, |v| v.name);
    let tokens = tokens(conns);
    let client_rt = runtime();
    let load = |v: &Variant, run: Duration| {
        let values: &[String] = if v.tokens { &tokens } else { &[] };
        let (ok, limited, other) = client_rt.block_on(load_with_header(
            "/me",
            v.addr,
            conns,
            run,
            "authorization",
            values,
        ));
        assert_eq!(
            (limited, other),
            (0, 0),
            "{}: statuses other than 200",
            v.name
        );
        ok
    };
    for v in &variants {
        load(v, Duration::from_millis(300));
    }
    let mut per_request = Vec::new();
    let paired = Paired::run(
        rounds,
        variants.len(),
        || load(&variants[0], run) as f64 / run.as_secs_f64(),
        |i| {
            let before = redis_commands(&redis_server);
            let ok = load(&variants[i], run);
            if variants[i].name.contains("Redis") {
                per_request.push((redis_commands(&redis_server) - before) as f64 / ok as f64);
            }
            ok as f64 / run.as_secs_f64()
        },
    );
    let mut report = String::from(
        "| variant | req/s (median) | × baseline (median of paired ratios) | min–max ratio |\n|---|---:|---:|---:|\n",
    );
    for (i, v) in variants.iter().enumerate() {
        let (rps, ratio, lo, hi) = paired.summary(i);
        report.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3}–{:.3} |\n",
            v.name, rps, ratio, lo, hi
        ));
    }
    if !per_request.is_empty() {
        report.push_str(&format!(
            "\nRedis commands per request on the Redis variant (the fan-out's heartbeat PINGs included): {:.5}\n",
            median(per_request)
        ));
    }
    report.push_str(&propagation(&server_rt, &url));
    publish(
        "target/jwt-load-report.md",
        rounds,
        secs,
        conns,
        "a token per connection, ",
        &report,
    );
}

/// Revokes on one of four instances and times until each other one refuses the token.
fn propagation(rt: &tokio::runtime::Runtime, url: &str) -> String {
    let n = env("PROPAGATIONS", 300) as usize;
    rt.block_on(async {
        let mut instances = Vec::new();
        for _ in 0..4 {
            let redis = RedisHandle::builder(url).timeout(Duration::from_secs(1)).build().await.unwrap();
            let revocations = Revocations::builder().prefix("prop").trust_empty_store(true).redis(redis).unwrap();
            assert!(revocations.wait_current(Duration::from_secs(5)).await);
            let guard = JwtLayer::builder().hs256(SECRET).revocations(revocations.clone()).build().unwrap();
            instances.push((revocations, guard));
        }
        let mut delays = Vec::new();
        for round in 0..n {
            let jti = format!("p{round}");
            let claims = serde_json::json!({"sub": "victim", "jti": jti, "iat": now(), "exp": now() + 600});
            let token = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
            let revoker = round % 4;
            let start = Instant::now();
            instances[revoker].0.revoke_token_id(None, &jti, (now() + 600) as f64).await.unwrap();
            let mut waiters = Vec::new();
            for (i, (_, guard)) in instances.iter().enumerate() {
                if i == revoker {
                    continue;
                }
                let (guard, token) = (guard.clone(), token.clone());
                waiters.push(tokio::spawn(async move {
                    let service = guard.layer(tower::service_fn(|_: Request<String>| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
                    }));
                    loop {
                        let request = Request::builder().header("authorization", format!("Bearer {token}")).body(String::new()).unwrap();
                        if service.clone().oneshot(request).await.unwrap().status() == 401 {
                            return start.elapsed();
                        }
                        tokio::task::yield_now().await;
                    }
                }));
            }
            for waiter in waiters {
                delays.push(waiter.await.unwrap().as_secs_f64() * 1e3);
            }
        }
        delays.sort_by(f64::total_cmp);
        let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
        format!(
            "\nPropagation of a revocation to the 3 other instances of 4 on one Redis (loopback), {} samples, from the start of `revoke_token_id` on one instance to the other's refusal: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            delays.len(),
            at(0.5),
            at(0.99),
            delays[delays.len() - 1]
        )
    })
}
