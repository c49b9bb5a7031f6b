//! One conformance suite for the revocation stores (memory, Redis, Cluster), then what
//! only Redis has: propagation, reloads, faults and the staleness policies.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::{Duration, Instant};

use common::*;
use parapet_core::StoreError;
use parapet_jwt::{JwtLayer, Revocations, WhenStale};
use parapet_testkit::RedisServer;
use serde_json::json;

#[tokio::test]
async fn revoking_a_token_refuses_it_and_no_other() {
    for backend in ALL {
        let revocations = revocations(backend, &prefix()).await;
        let guard = guard(&revocations);
        let (a, b) = (token("alice", "a1"), token("alice", "a2"));
        assert_eq!(status(&guard, &a).await, 200, "{backend:?}");
        revocations
            .revoke_token_id(Some("test"), "a1", (now() + 900) as f64)
            .await
            .unwrap();
        assert_eq!(status(&guard, &a).await, 401, "{backend:?}");
        assert_eq!(status(&guard, &b).await, 200, "{backend:?}");
        // Same jti from another issuer is another token.
        let other = sign(
            &json!({"sub": "alice", "jti": "a1", "iss": "other", "iat": now() - 1, "exp": now() + 900}),
        );
        assert_eq!(status(&guard, &other).await, 200, "{backend:?}");
        assert_eq!(revocations.len(), (1, 0), "{backend:?}");
    }
}

#[tokio::test]
async fn revoking_a_user_refuses_their_older_tokens_only() {
    for backend in ALL {
        let revocations = revocations(backend, &prefix()).await;
        let guard = guard(&revocations);
        let old = token("alice", "x");
        let no_jti = sign(&json!({"sub": "alice", "iat": now() - 1, "exp": now() + 900}));
        revocations.revoke_user("alice").await.unwrap();
        assert_eq!(status(&guard, &old).await, 401, "{backend:?}");
        assert_eq!(
            status(&guard, &no_jti).await,
            401,
            "tokens without jti too: {backend:?}"
        );
        assert_eq!(status(&guard, &token("bob", "y")).await, 200, "{backend:?}");
        // Issued after the revocation (iat in whole seconds: the next second).
        let newer =
            sign(&json!({"sub": "alice", "jti": "z", "iat": now() + 1, "exp": now() + 900}));
        assert_eq!(status(&guard, &newer).await, 200, "{backend:?}");
    }
}

#[tokio::test]
async fn the_global_epoch_refuses_every_older_token() {
    for backend in ALL {
        let revocations = revocations(backend, &prefix()).await;
        let guard = guard(&revocations);
        let (a, b) = (token("alice", "1"), token("bob", "2"));
        revocations.revoke_all().await.unwrap();
        assert_eq!(status(&guard, &a).await, 401, "{backend:?}");
        assert_eq!(status(&guard, &b).await, 401, "{backend:?}");
        let newer = sign(&json!({"sub": "carol", "iat": now() + 1, "exp": now() + 900}));
        assert_eq!(status(&guard, &newer).await, 200, "{backend:?}");
    }
}

#[tokio::test]
async fn a_token_without_jti_cannot_be_revoked_alone() {
    for backend in ALL {
        let revocations = revocations(backend, &prefix()).await;
        let result = revocations
            .revoke_token_id(None, "", (now() + 60) as f64)
            .await;
        assert!(
            matches!(result, Err(StoreError::InvalidArgument(_))),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn revoked_tokens_are_forgotten_when_they_expire() {
    for backend in ALL {
        let builder = Revocations::builder().leeway(Duration::ZERO);
        let revocations = revocations_with(backend, &prefix(), builder).await;
        revocations
            .revoke_token_id(None, "short", (now() + 1) as f64)
            .await
            .unwrap();
        revocations
            .revoke_token_id(None, "long", (now() + 900) as f64)
            .await
            .unwrap();
        assert_eq!(revocations.len().0, 2, "{backend:?}");
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        // The next revocation sweeps what ended.
        revocations
            .revoke_token_id(None, "next", (now() + 900) as f64)
            .await
            .unwrap();
        assert_eq!(
            revocations.len().0,
            2,
            "{backend:?}: short is gone, long and next stay"
        );
        // A token already past its end is not recorded at all.
        revocations
            .revoke_token_id(None, "dead", (now() - 10) as f64)
            .await
            .unwrap();
        assert_eq!(revocations.len().0, 2, "{backend:?}");
    }
}

#[tokio::test]
async fn tokens_older_than_the_maximum_age_are_refused() {
    for backend in ALL {
        let builder = Revocations::builder().max_token_age(Duration::from_secs(60));
        let revocations = revocations_with(backend, &prefix(), builder).await;
        let guard = guard(&revocations);
        let old = sign(&json!({"sub": "a", "iat": now() - 200, "exp": now() + 900}));
        assert_eq!(status(&guard, &old).await, 401, "{backend:?}");
        // A far-future exp is accepted, bounded by the age: its revocation ends with it.
        let forever = sign(&json!({"sub": "a", "jti": "f", "iat": now() - 1, "exp": u64::MAX}));
        assert_eq!(status(&guard, &forever).await, 200, "{backend:?}");
    }
}

#[tokio::test]
async fn the_capacity_bound_refuses_rather_than_drops() {
    for backend in ALL {
        let builder = Revocations::builder().max_entries(3);
        let revocations = revocations_with(backend, &prefix(), builder).await;
        for jti in ["1", "2", "3"] {
            revocations
                .revoke_token_id(None, jti, (now() + 900) as f64)
                .await
                .unwrap();
        }
        let full = revocations
            .revoke_token_id(None, "4", (now() + 900) as f64)
            .await;
        assert!(
            matches!(full, Err(StoreError::CapacityExceeded(_))),
            "{backend:?}: {full:?}"
        );
        // Revoking one that is already there again is fine.
        revocations
            .revoke_token_id(None, "2", (now() + 900) as f64)
            .await
            .unwrap();
        assert_eq!(revocations.len().0, 3, "{backend:?}");
    }
}

#[tokio::test]
async fn a_new_instance_loads_what_was_revoked_before_it_started() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let prefix = prefix();
        let first = revocations(backend, &prefix).await;
        first
            .revoke_token_id(Some("test"), "early", (now() + 900) as f64)
            .await
            .unwrap();
        first.revoke_user("mallory").await.unwrap();
        first.revoke_all().await.unwrap();
        let epoch_token = sign(&json!({"sub": "x", "iat": now() - 5, "exp": now() + 900}));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let later = revocations(backend, &prefix).await;
        assert_eq!(later.len(), (1, 1), "{backend:?}");
        let guard = guard(&later);
        assert_eq!(
            status(&guard, &token("bob", "early")).await,
            401,
            "{backend:?}"
        );
        assert_eq!(status(&guard, &epoch_token).await, 401, "{backend:?}");
        let fresh = sign(&json!({"sub": "bob", "jti": "new", "iat": now(), "exp": now() + 900}));
        assert_eq!(status(&guard, &fresh).await, 200, "{backend:?}");
    }
}

/// Revokes on one of four instances; every other refuses within a generous bound (the
/// p99 on loopback is measured by the `jwt` bench and recorded in BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_instance() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let prefix = prefix();
        let mut instances = Vec::new();
        for _ in 0..4 {
            instances.push(revocations(backend, &prefix).await);
        }
        let guards: Vec<JwtLayer> = instances.iter().map(guard).collect();
        for round in 0..10 {
            let jti = format!("r{round}");
            let victim = token("alice", &jti);
            for guard in &guards {
                assert_eq!(status(guard, &victim).await, 200);
            }
            let start = Instant::now();
            instances[round % 4]
                .revoke_token_id(Some("test"), &jti, (now() + 900) as f64)
                .await
                .unwrap();
            for guard in &guards {
                while status(guard, &victim).await != 401 {
                    assert!(
                        start.elapsed() < Duration::from_secs(2),
                        "{backend:?}: not propagated in 2 s"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
}

/// Checking a request costs no Redis command: only the fan-out's heartbeat PINGs run.
#[tokio::test]
async fn an_authenticated_request_costs_zero_redis_commands() {
    let server = RedisServer::start();
    let revocations = Revocations::builder()
        .redis(handle(&server.url()).await)
        .unwrap();
    assert!(revocations.wait_current(Duration::from_secs(10)).await);
    revocations
        .revoke_token_id(None, "warm", (now() + 900) as f64)
        .await
        .unwrap();
    revocations.revoke_user("someone").await.unwrap();
    let guard = guard(&revocations);
    let valid = token("alice", "v");
    server.command(&["CONFIG", "RESETSTAT"]);
    for _ in 0..500 {
        assert_eq!(status(&guard, &valid).await, 200);
    }
    let info = server.command(&["INFO", "commandstats"]);
    let others: Vec<&str> = info
        .lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && ![
                    "cmdstat_ping:",
                    "cmdstat_info:",
                    "cmdstat_config|resetstat:",
                ]
                .iter()
                .any(|ours| l.starts_with(ours))
        })
        .collect();
    assert!(
        others.is_empty(),
        "commands ran during 500 requests: {others:?}"
    );
}

/// Redis dies and comes back empty: no revoked token is accepted at any point, the
/// policy applies while the replica is unconfirmed, and the guard recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_never_lets_a_revoked_token_through() {
    let mut server = RedisServer::start();
    let builder = || {
        Revocations::builder()
            .staleness(Duration::from_millis(200))
            .timeout(Duration::from_millis(200))
    };
    let a = builder().redis(handle(&server.url()).await).unwrap();
    let b = builder().redis(handle(&server.url()).await).unwrap();
    assert!(
        a.wait_current(Duration::from_secs(10)).await
            && b.wait_current(Duration::from_secs(10)).await
    );
    let (guard_a, guard_b) = (guard(&a), guard(&b));
    let revoked = token("alice", "gone");
    let valid = token("bob", "ok");
    b.revoke_token_id(Some("test"), "gone", (now() + 900) as f64)
        .await
        .unwrap();
    while status(&guard_a, &revoked).await != 401 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    server.kill();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!a.is_current());
    for guard in [&guard_a, &guard_b] {
        let started = Instant::now();
        assert_eq!(
            status(guard, &valid).await,
            503,
            "fails closed while unconfirmed"
        );
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "refused at once"
        );
        assert_eq!(status(guard, &revoked).await, 401);
    }

    server.restart();
    assert!(
        a.wait_current(Duration::from_secs(10)).await
            && b.wait_current(Duration::from_secs(10)).await
    );
    for guard in [&guard_a, &guard_b] {
        assert_eq!(status(guard, &valid).await, 200, "recovered by itself");
        assert_eq!(
            status(guard, &revoked).await,
            401,
            "the replica kept the revocation"
        );
    }
    // Revocations made after the restart reach both.
    a.revoke_user("bob").await.unwrap();
    while status(&guard_b, &valid).await != 401 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The subscription is cut while a revocation is made: the replica reloads on resubscribing
/// and refuses the token; once it refuses, it never accepts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_resyncs_before_it_is_trusted() {
    let server = RedisServer::start();
    let a = Revocations::builder()
        .redis(handle(&server.url()).await)
        .unwrap();
    let b = Revocations::builder()
        .redis(handle(&server.url()).await)
        .unwrap();
    assert!(
        a.wait_current(Duration::from_secs(10)).await
            && b.wait_current(Duration::from_secs(10)).await
    );
    let guard_a = guard(&a);
    for round in 0..5 {
        let jti = format!("cut{round}");
        let victim = token("alice", &jti);
        server.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        b.revoke_token_id(Some("test"), &jti, (now() + 900) as f64)
            .await
            .unwrap();
        let start = Instant::now();
        loop {
            match status(&guard_a, &victim).await {
                401 => break,
                // Unconfirmed: refused.
                503 => {}
                // The replica may lag by at most the staleness bound (500 ms), if the cut
                // is not noticed before the revocation is published.
                200 if start.elapsed() < Duration::from_millis(500) => {}
                other => panic!(
                    "round {round}: the revoked token got {other} after {:?}",
                    start.elapsed()
                ),
            }
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "round {round}: no resync"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for _ in 0..50 {
            assert_eq!(status(&guard_a, &victim).await, 401);
        }
    }
}

/// `CheckStore` asks Redis while the replica is stale: here the instance may never
/// subscribe (an ACL user without channel rights), so every check goes to Redis, and
/// still sees what another instance revoked.
#[tokio::test]
async fn check_store_asks_redis_while_stale() {
    let server = RedisServer::start();
    server.command(&[
        "ACL",
        "SETUSER",
        "nosub",
        "on",
        ">pw",
        "~*",
        "+@all",
        "-subscribe",
        "-psubscribe",
        "-ssubscribe",
    ]);
    let url = format!("redis://nosub:pw@127.0.0.1:{}", server.port());
    let stale = Revocations::builder()
        .when_stale(WhenStale::CheckStore)
        .redis(handle(&url).await)
        .unwrap();
    let writer = Revocations::builder()
        .redis(handle(&server.url()).await)
        .unwrap();
    assert!(writer.wait_current(Duration::from_secs(10)).await);
    assert!(
        !stale.wait_current(Duration::from_millis(700)).await,
        "cannot subscribe"
    );
    let guard = guard(&stale);
    let (victim, valid) = (token("alice", "v1"), token("bob", "v2"));
    writer
        .revoke_token_id(Some("test"), "v1", (now() + 900) as f64)
        .await
        .unwrap();
    writer.revoke_user("carol").await.unwrap();
    assert_eq!(status(&guard, &victim).await, 401);
    assert_eq!(status(&guard, &token("carol", "v3")).await, 401);
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    assert_eq!(status(&guard, &valid).await, 200);
    let after = server.command_calls("evalsha") + server.command_calls("eval");
    assert_eq!(after - before, 1, "one script call per stale check");

    // Redis frozen: the check misses its deadline and the request is refused in time.
    server.pause();
    let started = Instant::now();
    assert_eq!(status(&guard, &valid).await, 503);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    server.resume();
}

#[tokio::test]
async fn fail_open_trusts_what_the_replica_knew() {
    let mut server = RedisServer::start();
    let revocations = Revocations::builder()
        .when_stale(WhenStale::FailOpen)
        .staleness(Duration::from_millis(100))
        .redis(handle(&server.url()).await)
        .unwrap();
    assert!(revocations.wait_current(Duration::from_secs(10)).await);
    revocations
        .revoke_token_id(Some("test"), "known", (now() + 900) as f64)
        .await
        .unwrap();
    let guard = guard(&revocations);
    server.kill();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!revocations.is_current());
    assert_eq!(status(&guard, &token("bob", "fine")).await, 200);
    assert_eq!(status(&guard, &token("alice", "known")).await, 401);
}

#[tokio::test]
async fn a_far_future_exp_is_remembered_no_longer_than_the_maximum_age() {
    for backend in ALL {
        let builder = Revocations::builder()
            .max_token_age(Duration::from_secs(2))
            .leeway(Duration::ZERO);
        let revocations = revocations_with(backend, &prefix(), builder).await;
        revocations
            .revoke_token_id(None, "forever", 1e12)
            .await
            .unwrap();
        assert_eq!(revocations.len().0, 1, "{backend:?}");
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        revocations
            .revoke_token_id(None, "next", (now() + 900) as f64)
            .await
            .unwrap();
        assert_eq!(revocations.len().0, 1, "{backend:?}: forever is gone");
    }
}

/// A set larger than one page (5,000) loads whole into an instance started afterwards.
#[tokio::test]
async fn a_large_set_loads_in_pages() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let prefix = prefix();
        let first = revocations(backend, &prefix).await;
        for i in 0..5_200 {
            first
                .revoke_token_id(Some("test"), &format!("bulk{i}"), (now() + 900) as f64)
                .await
                .unwrap();
        }
        first.revoke_user("someone").await.unwrap();
        let later = revocations(backend, &prefix).await;
        assert_eq!(later.len(), (5_200, 1), "{backend:?}");
        let guard = guard(&later);
        assert_eq!(
            status(&guard, &token("x", "bulk0")).await,
            401,
            "{backend:?}"
        );
        assert_eq!(
            status(&guard, &token("x", "bulk5199")).await,
            401,
            "{backend:?}"
        );
    }
}
