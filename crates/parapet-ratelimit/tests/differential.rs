//! The in-process store and the Redis script decide identically on random traces: same
//! outcome, same retry-after, same remaining and reset for every policy, at every step.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parapet_core::{ManualClock, RedisHandle};
use parapet_ratelimit::{MemoryStore, PolicySet, Quota, RateLimitStore, RedisStore, Subject};
use parapet_testkit::RedisServer;
use proptest::prelude::*;

use common::set;

#[derive(Debug, Clone)]
enum Step {
    Check {
        wait_us: u64,
        cost: u32,
        subject: u8,
    },
    Ban {
        subject: u8,
        ms: u64,
    },
    Reset {
        subject: u8,
    },
    Refund {
        cost: u32,
        subject: u8,
    },
    /// Several checks asked for at once: on Redis they are queued together and decided in
    /// one batch call, in the order they were asked for.
    Burst {
        checks: Vec<(u32, u8)>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (0u64..800_000, 0u32..4, 0u8..3).prop_map(|(wait_us, cost, subject)| Step::Check { wait_us, cost, subject }),
        1 => (0u8..3, 1u64..2_000).prop_map(|(subject, ms)| Step::Ban { subject, ms }),
        1 => (0u8..3).prop_map(|subject| Step::Reset { subject }),
        1 => (0u32..3, 0u8..3).prop_map(|(cost, subject)| Step::Refund { cost, subject }),
        2 => prop::collection::vec((0u32..3, 0u8..3), 2..8).prop_map(|checks| Step::Burst { checks }),
    ]
}

fn policies() -> impl Strategy<Value = PolicySet> {
    // GCRA, fixed-window and sliding-window policies, mixed.
    prop::collection::vec((1u32..20, 1u64..5_000, 1u32..10, 0u8..3), 1..4).prop_map(|quotas| {
        let named: Vec<(String, Quota)> = quotas
            .into_iter()
            .enumerate()
            .map(|(i, (rate, period_ms, burst, algorithm))| {
                let quota = Quota::new(rate, Duration::from_millis(period_ms));
                let quota = match algorithm {
                    0 => quota.burst(burst),
                    1 => quota.fixed_window(),
                    _ => quota.sliding_window(),
                };
                (format!("p{i}"), quota)
            })
            .collect();
        let refs: Vec<(&str, Quota)> = named.iter().map(|(n, q)| (n.as_str(), *q)).collect();
        set(&refs)
    })
}

static CASE: AtomicU64 = AtomicU64::new(0);

#[test]
fn memory_and_redis_agree_on_random_traces() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle =
        runtime.block_on(async { RedisHandle::builder(server.url()).build().await.unwrap() });

    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(set in policies(), steps in prop::collection::vec(step(), 1..60))| {
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let clock = ManualClock::new();
        clock.set_micros(1_700_000_000_000_000);
        let memory = MemoryStore::with_clock(10_000, clock.clone());
        let redis = RedisStore::new(handle.clone()).unwrap().with_test_clock(clock.clone());
        let subject = |s: u8| Subject::new("diff", format!("{case}-{s}"));
        runtime.block_on(async {
            for (i, step) in steps.iter().enumerate() {
                match *step {
                    Step::Check { wait_us, cost, subject: s } => {
                        clock.advance(Duration::from_micros(wait_us));
                        let m = memory.check(&subject(s), &set, cost).await;
                        let r = redis.check(&subject(s), &set, cost).await;
                        match (m, r) {
                            (Ok(m), Ok(r)) => prop_assert_eq!(&m, &r, "step {}", i),
                            // A cost above a burst is refused by both, as an argument error.
                            (Err(m), Err(r)) => {
                                prop_assert_eq!(m.kind(), "argument", "step {}", i);
                                prop_assert_eq!(r.kind(), "argument", "step {}", i);
                            }
                            (m, r) => prop_assert!(false, "step {}: {:?} vs {:?}", i, m, r),
                        }
                    }
                    Step::Burst { ref checks } => {
                        // Every Redis check is queued before the first is awaited.
                        let calls: Vec<_> = checks
                            .iter()
                            .map(|&(cost, s)| redis.check(&subject(s), &set, cost))
                            .collect();
                        let mut r = Vec::new();
                        for call in calls {
                            r.push(call.await.map_err(|e| e.kind()));
                        }
                        for (j, &(cost, s)) in checks.iter().enumerate() {
                            let m = memory.check(&subject(s), &set, cost).await.map_err(|e| e.kind());
                            prop_assert_eq!(&m, &r[j], "step {} check {}", i, j);
                        }
                    }
                    Step::Ban { subject: s, ms } => {
                        memory.ban(&subject(s), Duration::from_millis(ms)).await.unwrap();
                        redis.ban(&subject(s), Duration::from_millis(ms)).await.unwrap();
                    }
                    Step::Reset { subject: s } => {
                        memory.reset(&subject(s), &set).await.unwrap();
                        redis.reset(&subject(s), &set).await.unwrap();
                    }
                    Step::Refund { cost, subject: s } => {
                        let m = memory.refund(&subject(s), &set, cost).await.map_err(|e| e.kind());
                        let r = redis.refund(&subject(s), &set, cost).await.map_err(|e| e.kind());
                        prop_assert_eq!(m, r, "step {}", i);
                    }
                }
            }
            Ok(())
        })?;
    });
}
