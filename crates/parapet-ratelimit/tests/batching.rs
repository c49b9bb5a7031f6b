//! Decisions that arrive together share a script call, and keep apart what must stay apart:
//! a decision that fails fails alone, and a decision is made in the order it was asked for.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use parapet_ratelimit::{Outcome, Quota, RateLimitStore, RedisStore, Subject};
use parapet_testkit::RedisServer;

use common::{redis, set};

/// One subject's sliding-window key holds a string (someone wrote it by hand), so the
/// script's sorted-set commands fail on it: its decisions fail, and the decisions queued
/// with it, before and after, are made as if it were not there.
// One thread: every check is queued before the batcher runs, so they make one batch.
#[tokio::test]
async fn a_failing_decision_fails_alone() {
    let server = RedisServer::start();
    let store = RedisStore::new(redis(server.url()).await).unwrap();
    let minute = set(&[("minute", Quota::per_minute(2).sliding_window())]);
    let poisoned = Subject::new("batch", "poisoned");
    store.check(&poisoned, &minute, 1).await.unwrap();
    let keys = server.command(&["KEYS", "parapet:rl:*minute*"]);
    let key = keys
        .lines()
        .find(|l| l.starts_with("parapet:"))
        .unwrap()
        .to_owned();
    server.command(&["DEL", &key]);
    server.command(&["SET", &key, "not a sorted set"]);
    let calls = server.command_calls("evalsha");
    // Asked for together: before, the poisoned one, after, and twice more each.
    let subjects = ["before", "poisoned", "after"].map(|s| Subject::new("batch", s));
    let checks: Vec<_> = (0..3)
        .flat_map(|_| subjects.iter().map(|s| store.check(s, &minute, 1)))
        .collect();
    // Each check is queued when it is made; awaiting them in turn lets the batcher run once.
    let mut results = Vec::new();
    for check in checks {
        results.push(check.await);
    }
    assert!(
        server.command_calls("evalsha") - calls < 9,
        "the nine decisions shared calls"
    );
    for (i, result) in results.iter().enumerate() {
        let who = i % 3;
        match (who, result) {
            (1, Err(e)) => assert_eq!(e.kind(), "reply", "{e}"),
            (1, Ok(d)) => panic!("the poisoned key was decided: {d:?}"),
            (_, Ok(d)) => {
                let expected = if i < 6 {
                    Outcome::Allowed
                } else {
                    Outcome::Limited
                };
                assert_eq!(d.outcome, expected, "decision {i}");
            }
            (_, Err(e)) => panic!("decision {i} failed with its neighbour: {e}"),
        }
    }
}

/// A caller that gave up before its decision was sent is not charged: a check whose future
/// is dropped unpolled leaves the quota as it was.
// One thread: the batcher runs only once the test waits, after the drops.
#[tokio::test]
async fn a_decision_given_up_before_it_is_sent_is_not_charged() {
    let server = RedisServer::shared();
    let store = RedisStore::new(redis(server.url()).await).unwrap();
    let minute = set(&[("minute", Quota::per_minute(3))]);
    let subject = Subject::new("batch", "gave-up");
    // Start the batcher and warm the connection.
    store
        .check(&Subject::new("batch", "warm-up"), &minute, 1)
        .await
        .unwrap();
    for _ in 0..5 {
        drop(store.check(&subject, &minute, 1));
    }
    let state = store.check(&subject, &minute, 0).await.unwrap();
    assert_eq!(state.states[0].remaining, 3, "nothing was charged");
}
