//! Revocation replicas at scale: with `ENTRIES` revoked tokens and as many revoked users in
//! Redis (default 1,000,000 each), how long a new instance takes to serve, and what a lost
//! subscription costs an instance that serves meanwhile.
//!
//! - Start-up: a new instance, from `Revocations::redis` until `wait_current` says current
//!   (the whole set loaded), `STARTS` times (default 3).
//! - Subscription loss: `CLIENT KILL TYPE pubsub` while four tasks check a valid token
//!   without pause and another instance revokes one; the time until the revoked token is
//!   refused, and the 503s and checks meanwhile. `ROUNDS` times (default 5), spaced past
//!   the staleness bound. Then the same once after the log was cut (a change the instance
//!   never heard, trimmed away), which makes it load everything again.
//!
//! `cargo bench -p parapet-benches --bench jwt_resync` (env: `ENTRIES`, `STARTS`,
//! `ROUNDS`). The table goes to stdout and `target/jwt-resync-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // the load helpers are for the other harnesses
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Request;
use jsonwebtoken::{EncodingKey, Header};
use parapet_testkit::RedisServer;
use tower::{Layer, ServiceExt};
use tower_parapet::core::RedisHandle;
use tower_parapet::jwt::{JwtLayer, Revocations};

use harness::{env, runtime};

const SECRET: &str = "bench secret, thirty-two bytes at least!";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(sub: &str, jti: &str) -> String {
    let now = now_ms();
    let claims = serde_json::json!({
        "sub": sub, "jti": jti, "iss": "bench",
        "iat": now as f64 / 1000.0, "exp": now / 1000 + 600,
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn status(guard: &JwtLayer, token: &str) -> u16 {
    let service = guard.layer(tower::service_fn(|_: Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    }));
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    service.oneshot(request).await.unwrap().status().as_u16()
}

/// An instance with room for twice the entries (a full set would widen the bench's
/// revocations to everyone).
async fn instance(url: &str, entries: usize) -> Revocations {
    let redis = RedisHandle::builder(url)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    Revocations::builder()
        .max_entries(2 * entries + 10)
        .redis(redis)
        .unwrap()
}

fn guard(revocations: &Revocations) -> JwtLayer {
    JwtLayer::builder()
        .hs256(SECRET)
        .revocations(revocations.clone())
        .build()
        .unwrap()
}

/// Fills `key` (a sorted set) with `n` members `<prefix><i>` scored `score`, 10,000 per
/// script call.
fn fill(server: &RedisServer, key: &str, prefix: &str, n: usize, score: u64) {
    let script = "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do \
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4] .. i) end return 1";
    for start in (0..n).step_by(10_000) {
        let end = (start + 10_000).min(n) - 1;
        server.command(&[
            "EVAL",
            script,
            "1",
            key,
            &start.to_string(),
            &end.to_string(),
            &score.to_string(),
            prefix,
        ]);
    }
}

/// One subscription loss on `revocations` while traffic runs: (ms until the token revoked
/// meanwhile is refused, 503s, checks).
async fn cut(
    server: &RedisServer,
    revocations: &Revocations,
    writer: &Revocations,
    jti: &str,
) -> (f64, usize, usize) {
    let guard = guard(revocations);
    let stop = Arc::new(AtomicBool::new(false));
    let (checks, unavailable) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (guard, stop, checks, unavailable) = (
            guard.clone(),
            stop.clone(),
            checks.clone(),
            unavailable.clone(),
        );
        let valid = token(&format!("bystander{i}"), &format!("v{i}"));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match status(&guard, &valid).await {
                    503 => {
                        unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                    200 => {}
                    other => panic!("a valid token got {other}"),
                }
                checks.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let victim = token("victim", jti);
    let started = Instant::now();
    server.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    writer
        .revoke_token_id(Some("bench"), jti, (now_ms() / 1000 + 600) as f64)
        .await
        .unwrap();
    while status(&guard, &victim).await != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never refused"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let refused_ms = started.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    (
        refused_ms,
        unavailable.load(Ordering::Relaxed),
        checks.load(Ordering::Relaxed),
    )
}

fn main() {
    let entries = env("ENTRIES", 1_000_000) as usize;
    let starts = env("STARTS", 3) as usize;
    let rounds = env("ROUNDS", 5) as usize;
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let url = server.url();
    let rt = runtime();
    let mut report = format!(
        "### Revocation replicas with {entries} revoked tokens and {entries} revoked users\n\n"
    );
    rt.block_on(async {
        // A first instance writes the generation and names the keys.
        let writer = instance(&url, entries).await;
        assert!(writer.wait_current(Duration::from_secs(10)).await);
        writer
            .revoke_token_id(Some("bench"), "seed", (now_ms() / 1000 + 600) as f64)
            .await
            .unwrap();
        writer.revoke_user("seed").await.unwrap();
        let tokens = server.command(&["KEYS", "*:jwt:*:tokens"]);
        let users = server.command(&["KEYS", "*:jwt:*:users"]);
        let filling = Instant::now();
        let until = now_ms() + 3_600_000;
        fill(&server, tokens.trim(), "6:bench", entries, until);
        fill(&server, users.trim(), "user-", entries, now_ms());
        println!("filled in {:.1} s", filling.elapsed().as_secs_f64());
        let memory = server.command(&["INFO", "memory"]);
        let used = memory
            .lines()
            .find_map(|l| l.strip_prefix("used_memory_human:"))
            .unwrap_or("?")
            .to_owned();

        report.push_str("| measure | figure |\n|---|---|\n");
        report.push_str(&format!("| Redis memory | {used} |\n"));
        let mut times = Vec::new();
        let mut serving = None;
        for _ in 0..starts {
            let started = Instant::now();
            let fresh = instance(&url, entries).await;
            assert!(fresh.wait_current(Duration::from_secs(300)).await);
            times.push(started.elapsed().as_secs_f64());
            assert_eq!(fresh.len().0, entries + 1);
            serving = Some(fresh);
        }
        let serving = serving.unwrap();
        report.push_str(&format!(
            "| a new instance serves after (s), each start | {} |\n",
            times
                .iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut refused = Vec::new();
        let (mut unavailable, mut checks) = (0, 0);
        for round in 0..rounds {
            let (ms, bad, all) = cut(&server, &serving, &writer, &format!("cut{round}")).await;
            refused.push(ms);
            unavailable += bad;
            checks += all;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        report.push_str(&format!(
            "| subscription loss, caught up from the log: revoked token refused after (ms) | {} |\n",
            refused
                .iter()
                .map(|t| format!("{t:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        report.push_str(&format!(
            "| subscription loss, caught up from the log: 503s / checks meanwhile | {unavailable} / {checks} |\n"
        ));
        // A change never heard, trimmed from the log: the next loss loads everything.
        let log = server.command(&["KEYS", "*:jwt:*:log"]);
        server.command(&["XADD", log.trim(), "*", "c", "unheard"]);
        server.command(&["XTRIM", log.trim(), "MAXLEN", "0"]);
        let (ms, bad, all) = cut(&server, &serving, &writer, "after-trim").await;
        report.push_str(&format!(
            "| subscription loss, log cut (everything loaded again): refused after (ms), 503s / checks | {ms:.0}, {bad} / {all} |\n"
        ));
    });
    println!("\n{report}");
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/jwt-resync-report.md"
        ),
        &report,
    );
}
