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
            &json!({"sub": "alice", "jti": "a1", "iss": "other", "iat": issued_now(), "exp": now() + 900}),
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
        let no_jti = sign(&json!({"sub": "alice", "iat": issued_now(), "exp": now() + 900}));
        revocations.revoke_user("alice").await.unwrap();
        assert_eq!(status(&guard, &old).await, 401, "{backend:?}");
        assert_eq!(
            status(&guard, &no_jti).await,
            401,
            "tokens without jti too: {backend:?}"
        );
        assert_eq!(status(&guard, &token("bob", "y")).await, 200, "{backend:?}");
        // Issued after the revocation, in the same second: `iat` carries milliseconds, so
        // the comparison is exact and no wait is needed.
        let newer = token("alice", "z");
        assert_eq!(status(&guard, &newer).await, 200, "{backend:?}");
        // A whole-second `iat` cannot say where in its second it was issued: the second of
        // the revocation counts as before it.
        revocations.revoke_user("dana").await.unwrap();
        let second = now();
        let whole = sign(&json!({"sub": "dana", "iat": second, "exp": second + 900}));
        assert_eq!(status(&guard, &whole).await, 401, "{backend:?}");
        let next = sign(&json!({"sub": "dana", "iat": second + 1, "exp": second + 900}));
        assert_eq!(status(&guard, &next).await, 200, "{backend:?}");
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
        let newer = token("carol", "3");
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
        let forever = sign(&json!({"sub": "a", "jti": "f", "iat": issued_now(), "exp": u64::MAX}));
        assert_eq!(status(&guard, &forever).await, 200, "{backend:?}");
    }
}

/// A full set never makes a revocation fail and never lets the revoked token through: it
/// widens, token to user to everyone.
#[tokio::test]
async fn a_full_set_widens_rather_than_refuses() {
    for backend in ALL {
        let builder = Revocations::builder().max_entries(3);
        let revocations = revocations_with(backend, &prefix(), builder).await;
        let guard = guard(&revocations);
        for jti in ["a1", "a2", "a3"] {
            assert_eq!(
                logout(&guard, &revocations, &token("alice", jti)).await,
                204
            );
        }
        assert_eq!(revocations.len(), (3, 0), "{backend:?}");
        // The token set is full: bob's logout revokes bob.
        let (bob_phone, bob_laptop) = (token("bob", "b1"), token("bob", "b2"));
        assert_eq!(
            logout(&guard, &revocations, &bob_phone).await,
            204,
            "{backend:?}"
        );
        assert_eq!(status(&guard, &bob_phone).await, 401, "{backend:?}");
        assert_eq!(
            status(&guard, &bob_laptop).await,
            401,
            "{backend:?}: every older token of bob's"
        );
        let carol = token("carol", "c1");
        assert_eq!(status(&guard, &carol).await, 200, "{backend:?}");
        assert_eq!(revocations.len(), (3, 1), "{backend:?}");
        // A bare id has no user to widen to: everything issued so far.
        revocations
            .revoke_token_id(Some("test"), "c9", (now() + 900) as f64)
            .await
            .unwrap();
        assert_eq!(status(&guard, &carol).await, 401, "{backend:?}");
        // The user set fills too: a user's revocation revokes everyone.
        let dave = token("dave", "d1");
        revocations.revoke_user("u1").await.unwrap();
        revocations.revoke_user("u2").await.unwrap();
        assert_eq!(revocations.len(), (3, 3), "{backend:?}");
        let erin = token("erin", "e1");
        assert_eq!(status(&guard, &erin).await, 200, "{backend:?}");
        assert_eq!(
            logout(&guard, &revocations, &dave).await,
            204,
            "{backend:?}"
        );
        assert_eq!(status(&guard, &dave).await, 401, "{backend:?}");
        assert_eq!(
            status(&guard, &erin).await,
            401,
            "{backend:?}: widened to all"
        );
        assert_eq!(revocations.len(), (3, 3), "{backend:?}");
        // Tokens issued afterwards are accepted.
        assert_eq!(
            status(&guard, &token("erin", "e2")).await,
            200,
            "{backend:?}"
        );
        // Revoking one that is already there stays a token revocation.
        let before = revocations.len();
        revocations
            .revoke_token_id(Some("test"), "a2", (now() + 900) as f64)
            .await
            .unwrap();
        assert_eq!(revocations.len(), before, "{backend:?}");
    }
}

/// One account logging in and out in a loop cannot fill the token set everyone shares.
#[tokio::test]
async fn one_subject_cannot_fill_the_token_set() {
    for backend in ALL {
        let builder = Revocations::builder().max_tokens_per_user(2);
        let revocations = revocations_with(backend, &prefix(), builder).await;
        let guard = guard(&revocations);
        let older = token("mallory", "m0");
        for round in 1..=50 {
            let jti = format!("m{round}");
            let token = token("mallory", &jti);
            assert_eq!(
                logout(&guard, &revocations, &token).await,
                204,
                "{backend:?}"
            );
            assert_eq!(status(&guard, &token).await, 401, "{backend:?}");
        }
        assert_eq!(
            revocations.len(),
            (2, 1),
            "{backend:?}: two tokens, then the user"
        );
        assert_eq!(status(&guard, &older).await, 401, "{backend:?}");
        // Another user's logout is still a token revocation.
        let alice = token("alice", "a1");
        assert_eq!(logout(&guard, &revocations, &alice).await, 204);
        assert_eq!(revocations.len(), (3, 1), "{backend:?}");
        assert_eq!(
            status(&guard, &token("mallory", "next")).await,
            200,
            "{backend:?}: a new login works"
        );
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
    let fresh = token("bob", "after");
    for guard in [&guard_a, &guard_b] {
        assert_eq!(status(guard, &fresh).await, 200, "recovered by itself");
        assert_eq!(
            status(guard, &revoked).await,
            401,
            "the replica kept the revocation"
        );
        assert_eq!(
            status(guard, &valid).await,
            401,
            "Redis came back empty: what it lost is unknown, so every older token is refused"
        );
    }
    // Revocations made after the restart reach both.
    a.revoke_user("bob").await.unwrap();
    while status(&guard_b, &fresh).await != 401 {
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
    let (victim, valid, of_carol) = (
        token("alice", "v1"),
        token("bob", "v2"),
        token("carol", "v3"),
    );
    writer
        .revoke_token_id(Some("test"), "v1", (now() + 900) as f64)
        .await
        .unwrap();
    writer.revoke_user("carol").await.unwrap();
    assert_eq!(status(&guard, &victim).await, 401);
    assert_eq!(status(&guard, &of_carol).await, 401);
    let before = server.command_calls("evalsha") + server.command_calls("eval");
    assert_eq!(status(&guard, &valid).await, 200);
    let after = server.command_calls("evalsha") + server.command_calls("eval");
    assert_eq!(after - before, 1, "one script call per stale check");
    // Redis lost its data: nothing it says can be trusted, so the check refuses.
    server.command(&["FLUSHALL"]);
    assert_eq!(status(&guard, &valid).await, 401);

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

/// Redis loses its data (restarted empty, flushed): no instance, running or started
/// afterwards, accepts a token issued before the loss, revoked or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_data_loss_never_un_revokes() {
    let mut server = RedisServer::start();
    let url = server.url();
    let start = || async {
        let revocations = Revocations::builder().redis(handle(&url).await).unwrap();
        assert!(revocations.wait_current(Duration::from_secs(10)).await);
        revocations
    };
    let first = start().await;
    let (revoked, of_user) = (token("alice", "gone"), token("mallory", "m"));
    first
        .revoke_token_id(Some("test"), "gone", (now() + 900) as f64)
        .await
        .unwrap();
    first.revoke_user("mallory").await.unwrap();
    drop(first);

    // Restarted empty, with no instance running to remember: a new one refuses both.
    server.kill();
    server.restart();
    let second = start().await;
    let guard_second = guard(&second);
    for token in [&revoked, &of_user] {
        assert_eq!(status(&guard_second, token).await, 401);
    }
    let carol = token("carol", "c");
    assert_eq!(status(&guard_second, &carol).await, 200);

    // Flushed while an instance runs (its subscription survives): the next instance
    // finds no marker, and both refuse what was issued before.
    server.command(&["FLUSHALL"]);
    let third = start().await;
    let guard_third = guard(&third);
    assert_eq!(status(&guard_third, &carol).await, 401);
    let started = Instant::now();
    while status(&guard_second, &carol).await != 401 {
        assert!(started.elapsed() < Duration::from_secs(2), "not announced");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let fresh = token("carol", "d");
    for guard in [&guard_second, &guard_third] {
        assert_eq!(status(guard, &fresh).await, 200);
    }
}

/// An empty Redis looks like a loss, so the very first start refuses older tokens, unless
/// the store is trusted when empty.
#[tokio::test]
async fn a_first_start_refuses_older_tokens_unless_trusted() {
    let older = token("alice", "before");
    for (trust, expected) in [(false, 401), (true, 200)] {
        let revocations = revocations_with(
            Backend::Redis,
            &prefix(),
            Revocations::builder().trust_empty_store(trust),
        )
        .await;
        assert_eq!(
            status(&guard(&revocations), &older).await,
            expected,
            "trusted: {trust}"
        );
    }
}

/// A lost subscription is caught up from the log of recent changes, not by loading every
/// revocation again, and requests meanwhile wait the moment out instead of getting 503.
/// Once the log no longer holds every change since the instance's position, it loads all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_catches_up_from_the_log_without_a_503() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let server = RedisServer::start();
    let url = server.url();
    let start = || async {
        // The wait is bounded by the store deadline: a loaded test machine gets 500 ms.
        let revocations = Revocations::builder()
            .timeout(Duration::from_millis(500))
            .redis(handle(&url).await)
            .unwrap();
        assert!(revocations.wait_current(Duration::from_secs(10)).await);
        revocations
    };
    let (a, b) = (start().await, start().await);
    for i in 0..50 {
        b.revoke_token_id(Some("test"), &format!("old{i}"), (now() + 900) as f64)
            .await
            .unwrap();
    }
    let guard_a = guard(&a);
    let full_loads = || server.command_calls("xrevrange");
    let loads_before = full_loads();

    let stop = Arc::new(AtomicBool::new(false));
    let (served, unavailable) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (guard, stop, served, unavailable) = (
            guard_a.clone(),
            stop.clone(),
            served.clone(),
            unavailable.clone(),
        );
        let valid = token("bob", "ok");
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match status(&guard, &valid).await {
                    200 => served.fetch_add(1, Ordering::Relaxed),
                    503 => unavailable.fetch_add(1, Ordering::Relaxed),
                    other => panic!("a valid token got {other}"),
                };
                tokio::task::yield_now().await;
            }
        })
    };
    let cut_and_revoke = |round: String| {
        let (b, guard_a) = (b.clone(), guard_a.clone());
        let server = &server;
        async move {
            let victim = token("alice", &round);
            server.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
            b.revoke_token_id(Some("test"), &round, (now() + 900) as f64)
                .await
                .unwrap();
            let started = Instant::now();
            while status(&guard_a, &victim).await != 401 {
                assert!(started.elapsed() < Duration::from_secs(2), "{round}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    for round in 0..4 {
        cut_and_revoke(format!("cut{round}")).await;
        // A subscription that lasted past the staleness bound reconnects at once again
        // (shorter ones back off, which a single loss never meets).
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert_eq!(full_loads(), loads_before, "caught up from the log");
    assert_eq!(status(&guard_a, &token("x", "old0")).await, 401);

    // A change the instance never heard, trimmed from the log: the next loss cannot be
    // caught up from the log and loads everything.
    let log = server.command(&["KEYS", "*:log"]);
    server.command(&["XADD", log.trim(), "*", "c", "unheard"]);
    server.command(&["XTRIM", log.trim(), "MAXLEN", "0"]);
    cut_and_revoke("after-trim".to_owned()).await;
    assert!(full_loads() > loads_before, "loaded everything again");

    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert!(served.load(Ordering::Relaxed) > 100, "traffic ran");
    assert_eq!(
        unavailable.load(Ordering::Relaxed),
        0,
        "no 503 for a subscription lost a moment"
    );
}

/// The per-subject cap counts the revoked tokens still held, not every revocation ever
/// made: an app that revokes the old token at each refresh never meets it.
#[tokio::test]
async fn the_per_subject_cap_counts_tokens_still_held() {
    for backend in ALL {
        let builder = Revocations::builder()
            .max_tokens_per_user(2)
            .leeway(Duration::ZERO);
        let revocations = revocations_with(backend, &prefix(), builder).await;
        let guard = JwtLayer::builder()
            .hs256(SECRET)
            .leeway(Duration::ZERO)
            .revocations(revocations.clone())
            .build()
            .unwrap();
        // Tokens living one second, revoked half a second apart: never more than two
        // held at once, though three are revoked.
        let short = |jti: &str| {
            let iat = issued_now();
            sign(&json!({"sub": "refresher", "jti": jti, "iat": iat, "exp": iat + 1.0}))
        };
        assert_eq!(logout(&guard, &revocations, &short("a")).await, 204);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(logout(&guard, &revocations, &short("b")).await, 204);
        tokio::time::sleep(Duration::from_millis(600)).await;
        // `a` has expired, `b` is held: the next revocation is of one token again.
        let kept = token("refresher", "kept");
        assert_eq!(logout(&guard, &revocations, &short("c")).await, 204);
        assert_eq!(
            status(&guard, &kept).await,
            200,
            "{backend:?}: not widened to the user"
        );
        assert_eq!(revocations.len().1, 0, "{backend:?}: no user revoked");
    }
}

/// Redis loses changes while its generation marker survives (restored from an older
/// snapshot, failed over to a replica that lagged): the log goes backwards. An instance
/// that catches up from it then refuses every token issued before, and so does a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_gone_backwards_is_data_loss() {
    let server = RedisServer::start();
    let url = server.url();
    let start = || async {
        let revocations = Revocations::builder().redis(handle(&url).await).unwrap();
        assert!(revocations.wait_current(Duration::from_secs(10)).await);
        revocations
    };
    let a = start().await;
    for i in 0..3 {
        a.revoke_token_id(Some("test"), &format!("r{i}"), (now() + 900) as f64)
            .await
            .unwrap();
    }
    let guard_a = guard(&a);
    let valid = token("bob", "ok");
    assert_eq!(status(&guard_a, &valid).await, 200);
    // The log is lost, the marker kept; the subscription drops with it.
    let log = server.command(&["KEYS", "*:log"]);
    server.command(&["DEL", log.trim()]);
    server.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let started = Instant::now();
    while status(&guard_a, &valid).await != 401 {
        assert!(started.elapsed() < Duration::from_secs(3), "not refused");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let later = start().await;
    assert_eq!(
        status(&guard(&later), &valid).await,
        401,
        "a new instance too"
    );
    let fresh = token("bob", "after");
    assert_eq!(status(&guard_a, &fresh).await, 200);
    assert_eq!(status(&guard(&later), &fresh).await, 200);
}
