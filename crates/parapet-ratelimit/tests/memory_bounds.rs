//! The in-memory store under more subjects than it holds: evictions over-admit no more than
//! the documented formula (extra admissions ≤ evictions × burst), bans survive any churn,
//! a refusing store refuses rather than admits, and one decision is written all or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use http::StatusCode;
use parapet_core::ManualClock;
use parapet_ratelimit::{
    MemoryStore, Outcome, Quota, RateLimitLayer, RateLimitStore, Subject, WhenFull,
};

use common::{body, request_from, send, service, set};

const CAPACITY: usize = 1_000;
const BURST: u32 = 10;

fn subject(kind: &str, i: usize) -> Subject {
    Subject::new(kind, i.to_le_bytes())
}

async fn admitted(store: &MemoryStore, who: &Subject, n: u32) -> u32 {
    let minute = set(&[("minute", Quota::per_minute(BURST))]);
    let mut admitted = 0;
    for _ in 0..n {
        if store.check(who, &minute, 1).await.unwrap().outcome == Outcome::Allowed {
            admitted += 1;
        }
    }
    admitted
}

#[tokio::test]
async fn churn_past_capacity_over_admits_within_the_formula() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(CAPACITY, clock.clone());
    // 100 victims use their whole burst: each owes one full window.
    for v in 0..100 {
        assert_eq!(admitted(&store, &subject("victim", v), BURST).await, BURST);
        assert_eq!(admitted(&store, &subject("victim", v), 1).await, 0);
    }
    // Churn: 10× capacity of attackers with the same debt, so victims are as evictable as
    // anyone (no time passes).
    for a in 0..10 * CAPACITY {
        admitted(&store, &subject("attacker", a), BURST).await;
    }
    assert!(store.len() <= store.capacity());
    let evicted = store.evicted();
    assert!(evicted > 0, "the churn had to evict");
    // Each victim may get back at most its burst; all of them at most evictions × burst.
    let mut extra = 0;
    for v in 0..100 {
        let again = admitted(&store, &subject("victim", v), BURST + 5).await;
        assert!(again <= BURST, "victim {v} got {again} > burst");
        extra += u64::from(again);
    }
    assert!(
        extra <= evicted * u64::from(BURST),
        "{extra} extra admissions > {evicted} evictions × {BURST}"
    );
}

#[tokio::test]
async fn subjects_with_larger_debts_outlive_the_churn_of_small_ones() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(CAPACITY, clock.clone());
    for v in 0..100 {
        admitted(&store, &subject("victim", v), BURST).await;
    }
    // Attackers each send one request: their entries end sooner, so they go first.
    for a in 0..10 * CAPACITY {
        admitted(&store, &subject("attacker", a), 1).await;
    }
    assert!(store.evicted() > 0);
    for v in 0..100 {
        assert_eq!(
            admitted(&store, &subject("victim", v), 1).await,
            0,
            "victim {v}"
        );
    }
}

#[tokio::test]
async fn a_ban_survives_ten_times_capacity_of_churn() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(CAPACITY, clock.clone());
    let banned = subject("banned", 0);
    store.ban(&banned, Duration::from_secs(3600)).await.unwrap();
    for a in 0..10 * CAPACITY {
        admitted(&store, &subject("attacker", a), BURST).await;
    }
    let minute = set(&[("minute", Quota::per_minute(BURST))]);
    let decision = store.check(&banned, &minute, 1).await.unwrap();
    assert_eq!(decision.outcome, Outcome::Banned);
    assert!(decision.retry_after.unwrap() > Duration::from_secs(3500));
}

#[tokio::test]
async fn bans_past_their_capacity_are_an_error_and_earlier_ones_stay() {
    let store = MemoryStore::new(CAPACITY).mark_capacity(64);
    let mut refused = None;
    for i in 0..1_000 {
        if let Err(e) = store.ban(&subject("b", i), Duration::from_secs(60)).await {
            refused = Some((i, e));
            break;
        }
    }
    let (at, error) = refused.expect("a ban past the capacity must be refused");
    assert_eq!(error.kind(), "capacity");
    let minute = set(&[("minute", Quota::per_minute(BURST))]);
    for i in 0..at {
        let decision = store.check(&subject("b", i), &minute, 1).await.unwrap();
        assert_eq!(decision.outcome, Outcome::Banned, "ban {i}");
    }
}

#[tokio::test]
async fn a_refusing_store_answers_429_to_new_subjects_when_full() {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(BURST))
        .memory_capacity(64)
        .when_memory_full(WhenFull::Refuse)
        .build()
        .unwrap();
    let mut svc = service(&layer);
    let mut refused = None;
    for i in 0..1_000u32 {
        let ip = format!("10.0.{}.{}", i / 256, i % 256);
        let response = send(&mut svc, request_from(&ip)).await;
        if response.status() != StatusCode::OK {
            refused = Some((i, response));
            break;
        }
    }
    let (at, response) = refused.expect("a full refusing store must refuse");
    assert!(at <= 64, "refused only after {at} subjects");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(body(response).await.contains("rate limiter at capacity"));
    // Known subjects are still counted, not let through: the first one has 9 left.
    let mut first = 0;
    for _ in 0..20 {
        if send(&mut svc, request_from("10.0.0.0")).await.status() == StatusCode::OK {
            first += 1;
        }
    }
    assert_eq!(first, BURST - 1);
}

#[tokio::test]
async fn one_decision_is_written_all_or_nothing_when_full() {
    // A clock that does not move: no entry expires while the test counts them.
    let store = MemoryStore::with_clock(64, ManualClock::new()).when_full(WhenFull::Refuse);
    let three = set(&[
        ("second", Quota::per_second(BURST)),
        ("minute", Quota::per_minute(BURST)),
        ("hour", Quota::per_hour(BURST)),
    ]);
    let mut refusals = 0;
    for i in 0..1_000 {
        let before = store.len();
        match store.check(&subject("s", i), &three, 1).await {
            Ok(_) => assert_eq!(store.len(), before + 3, "all three written"),
            Err(e) => {
                assert_eq!(e.kind(), "capacity");
                assert_eq!(store.len(), before, "none written");
                refusals += 1;
            }
        }
    }
    assert!(refusals > 0);
    assert_eq!(store.refused(), refusals);
}
