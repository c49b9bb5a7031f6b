//! Decisions that arrive together share a script call, and keep apart what must stay apart:
//! a decision that fails fails alone, and a decision is made in the order it was asked for.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use parapet_ratelimit::{Outcome, Quota, RateLimitStore, RedisStore, Subject};
use parapet_testkit::RedisServer;

use common::{redis, set};

/// The Redis key of the only subject decided so far on policy `minute`.
fn minute_key(server: &RedisServer) -> String {
    let keys = server.command(&["KEYS", "parapet:rl:*minute*"]);
    keys.lines()
        .find(|l| l.starts_with("parapet:"))
        .unwrap()
        .to_owned()
}

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
    let key = minute_key(&server);
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

/// The decisions of one subject in one call read each of its keys once and write each once,
/// and answer exactly as the in-process store does one by one; two policy sets that share a
/// policy share its key within the call too.
// One thread: every check is queued before the batcher runs, so they make one batch.
#[tokio::test]
async fn a_hot_key_is_read_and_written_once_per_call() {
    use parapet_core::ManualClock;
    use parapet_ratelimit::MemoryStore;

    let server = RedisServer::start();
    let clock = ManualClock::new();
    clock.set_micros(1_700_000_000_000_000);
    let store = RedisStore::new(redis(server.url()).await)
        .unwrap()
        .with_test_clock(clock.clone());
    let memory = MemoryStore::with_clock(1_000, clock.clone());
    let minute = set(&[("minute", Quota::per_minute(5))]);
    let both = set(&[
        ("minute", Quota::per_minute(5)),
        ("hour", Quota::per_hour(7).fixed_window()),
    ]);
    // The script is loaded and the batcher started.
    store
        .check(&Subject::new("batch", "warm-up"), &minute, 1)
        .await
        .unwrap();
    let hot = Subject::new("batch", "hot");
    let asked: Vec<_> = (0..12)
        .map(|i| if i % 3 == 2 { &both } else { &minute })
        .collect();
    let (calls, reads, writes) = (
        server.command_calls("evalsha"),
        server.command_calls("mget"),
        server.command_calls("set"),
    );
    let checks: Vec<_> = asked.iter().map(|set| store.check(&hot, set, 1)).collect();
    let mut decided = Vec::new();
    for check in checks {
        decided.push(check.await.unwrap());
    }
    assert_eq!(server.command_calls("evalsha") - calls, 1, "one call");
    // The first decision reads allow, ban and minute; the first of `both` adds hour.
    assert_eq!(
        server.command_calls("mget") - reads,
        2,
        "each key read once"
    );
    assert_eq!(
        server.command_calls("set") - writes,
        2,
        "minute and hour, once each"
    );
    let mut admitted = 0;
    for (i, (set, redis)) in asked.iter().zip(&decided).enumerate() {
        let expected = memory.check(&hot, set, 1).await.unwrap();
        assert_eq!(redis, &expected, "decision {i}");
        admitted += usize::from(redis.outcome == Outcome::Allowed);
    }
    assert_eq!(admitted, 5, "the minute's burst, whichever set asked");
    // What the call wrote is what the next call reads.
    let next = store.check(&hot, &minute, 1).await.unwrap();
    assert_eq!(next, memory.check(&hot, &minute, 1).await.unwrap());
    assert_eq!(next.outcome, Outcome::Limited);
}

/// A decision that adds many sliding-window cells (a sorted-set member each) does not share
/// a call with more than a call's budget of them: the light decisions queued with it are
/// not held up behind all the heavy ones.
// One thread: every check is queued before the batcher runs.
#[tokio::test]
async fn heavy_sliding_window_decisions_do_not_share_one_call() {
    use std::time::Duration;

    let server = RedisServer::start();
    // A generous deadline: three calls of 3,000 cells each on a loaded test machine.
    let handle = parapet_core::RedisHandle::builder(server.url())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let store = RedisStore::new(handle)
        .unwrap()
        .timeout(Duration::from_secs(2))
        .unwrap();
    let window = set(&[(
        "window",
        Quota::new(10_000, Duration::from_secs(60)).sliding_window(),
    )]);
    store
        .check(&Subject::new("batch", "warm-up"), &window, 1)
        .await
        .unwrap();
    let calls = server.command_calls("evalsha");
    // Heavy, light, light | heavy, light | heavy: three calls of at most 4,096 cells.
    let costs = [3_000, 1, 1, 3_000, 1, 3_000];
    let checks: Vec<_> = costs
        .iter()
        .enumerate()
        .map(|(i, &cost)| store.check(&Subject::new("batch", format!("s{i}")), &window, cost))
        .collect();
    for check in checks {
        assert_eq!(check.await.unwrap().outcome, Outcome::Allowed);
    }
    assert_eq!(server.command_calls("evalsha") - calls, 3);
}

/// A string state written by hand that the script never writes (`inf`, `nan`, text, a
/// number past 2^53) reads as no state: the decisions of its call, its own included, are
/// made, and what is written back has a positive expiry.
// One thread: every check is queued before the batcher runs.
#[tokio::test]
async fn a_hand_written_state_fails_no_call() {
    let server = RedisServer::start();
    let store = RedisStore::new(redis(server.url()).await).unwrap();
    let both = set(&[
        ("gcra", Quota::per_minute(3)),
        ("window", Quota::per_minute(3).fixed_window()),
    ]);
    for value in [
        "inf",
        "-inf",
        "nan",
        "1e400",
        "not a number",
        "9007199254740993",
    ] {
        let poisoned = Subject::new("batch", format!("poisoned-{value}"));
        server.command(&["FLUSHALL"]);
        store.check(&poisoned, &both, 1).await.unwrap();
        let keys = server.command(&["KEYS", "parapet:rl:*"]);
        let keys: Vec<&str> = keys.lines().filter(|l| l.starts_with("parapet:")).collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        for key in &keys {
            server.command(&["SET", key, value]);
        }
        let calls = server.command_calls("evalsha");
        let other = Subject::new("batch", "other");
        let checks: Vec<_> = [&poisoned, &other, &poisoned]
            .into_iter()
            .map(|s| store.check(s, &both, 1))
            .collect();
        for check in checks {
            let decision = check.await.unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(decision.outcome, Outcome::Allowed, "{value}");
        }
        assert_eq!(server.command_calls("evalsha") - calls, 1, "{value}");
        for key in &keys {
            let ttl: i64 = server
                .command(&["PTTL", key])
                .trim_start_matches(':')
                .parse()
                .unwrap();
            assert!(ttl > 0, "{value}: {key} has no expiry ({ttl})");
        }
    }
}

/// A GCRA state that is not a whole number (written by hand, or corrupted) counts as no
/// state: the decision is made afresh, never misread as a refusal (its short reply would not
/// be a whole number), and the decisions that share its call are unaffected.
#[tokio::test]
async fn a_state_that_is_not_a_whole_number_counts_as_none() {
    let server = RedisServer::start();
    let store = RedisStore::new(redis(server.url()).await).unwrap();
    let minute = set(&[("minute", Quota::per_minute(3))]);
    let odd = Subject::new("batch", "odd");
    let first = store.check(&odd, &minute, 1).await.unwrap();
    assert_eq!(first.states[0].remaining, 2);
    let key = minute_key(&server);
    // A quarter of a microsecond after the stored state: 4 x (tat - now) would be a
    // fraction, which Redis cuts to an integer (a status the script never meant).
    let state: f64 = server.command(&["GET", &key]).trim().parse().unwrap();
    server.command(&["SET", &key, &format!("{:.2}", state + 0.25), "PX", "60000"]);
    let other = Subject::new("batch", "other");
    let checks = [
        store.check(&odd, &minute, 1),
        store.check(&other, &minute, 1),
    ];
    for check in checks {
        let decision = check.await.unwrap();
        assert_eq!(decision.outcome, Outcome::Allowed);
        assert_eq!(
            decision.states[0].remaining, 2,
            "decided as a first request"
        );
    }
}
