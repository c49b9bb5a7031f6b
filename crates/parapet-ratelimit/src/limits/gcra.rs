//! GCRA (the generic cell rate algorithm, ITU-T I.371 "virtual scheduling") in integer
//! microseconds: the one decision function of the memory backend, mirrored line for line by
//! the Redis script (`store/gcra.lua`), and checked against it by property tests.
//!
//! State per (subject, policy) is one number, the theoretical arrival time `tat`: when the
//! subject's backlog will have drained. With `T` the emission interval and `B` the burst, a
//! request of cost `n` at `now` is admitted iff `max(tat, now) + n·T − now ≤ B·T`; then
//! `tat` becomes `max(tat, now) + n·T`. A refusal writes nothing, so a client hammering a
//! closed door does not push its own reopening back.

use std::time::Duration;

use crate::PolicyState;

/// A policy's parameters: emission interval `T` in µs and burst `B`; or, with `window`
/// above zero, a fixed window of that many µs admitting `burst` cells. A shadow policy is
/// decided and reported but never refuses (see [`evaluate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) interval: i64,
    pub(crate) burst: i64,
    pub(crate) shadow: bool,
    /// 0 for GCRA; the window's length in µs for a fixed window.
    pub(crate) window: i64,
}

impl Limit {
    fn tolerance(self) -> i64 {
        self.interval * self.burst
    }

    /// What one cell moves the stored number by: `T` for GCRA, 1 for a fixed window (whose
    /// number is `window end + count`). Refunds step back by it.
    pub(crate) fn step(self) -> i64 {
        if self.window > 0 { 1 } else { self.interval }
    }
}

/// A fixed window's state at `now`: its end, and the cells counted in it so far.
///
/// The stored number is `end + count`: its own expiry, as the in-memory table wants, and
/// unambiguous because `count < window` (a policy admits fewer cells per window than it
/// has µs) and every end is a multiple of the window. A stored window later than now's
/// (a clock that stepped back) keeps its count: it costs at most one window.
fn fixed_window(now: i64, stored: Option<i64>, window: i64) -> (i64, i64) {
    let end = (now.div_euclid(window) + 1) * window;
    let count = stored.map_or(0, |s| {
        let stored_end = s.div_euclid(window) * window;
        if stored_end >= end { s - stored_end } else { 0 }
    });
    (end, count)
}

/// The outcome of charging `cost` to a set of policies at `now`, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Evaluation {
    pub(crate) allowed: bool,
    /// µs until the request would be admitted (0 when allowed).
    pub(crate) retry_after: i64,
    pub(crate) states: Vec<PolicyState>,
    /// The new `tat` of each policy (the first `states.len()` entries), to be stored when
    /// [`must_write`](Self::must_write).
    pub(crate) new_tats: [i64; MAX_POLICIES],
}

impl Evaluation {
    /// True when the decision charged something: admitted with a cost above zero.
    pub(crate) fn must_write(&self, cost: i64) -> bool {
        self.allowed && cost > 0
    }

    /// The tats to store, in policy order (empty unless [`must_write`](Self::must_write)).
    #[cfg(test)]
    fn writes(&self, cost: i64) -> &[i64] {
        if self.must_write(cost) {
            &self.new_tats[..self.states.len()]
        } else {
            &[]
        }
    }
}

/// Most policies one evaluation handles (`PolicySet` enforces it).
pub(crate) const MAX_POLICIES: usize = 16;

/// Charges `cost` cells to every policy at `now`, given each policy's stored `tat`.
///
/// Shadow policies take no part in the verdict: the request is admitted or refused by the
/// others alone. An admitted request charges a shadow policy only if it fits in it, as if
/// that policy were a limiter of its own, so that its state is the one it would have had
/// enforced; its state reports `retry_after` when it would have refused.
pub(crate) fn evaluate(
    now: i64,
    stored: &[Option<i64>],
    limits: &[Limit],
    cost: i64,
) -> Evaluation {
    debug_assert!(stored.len() == limits.len() && limits.len() <= MAX_POLICIES);
    let mut retry_after = 0;
    let mut tats = [0; MAX_POLICIES];
    let mut new_tats = [0; MAX_POLICIES];
    let mut overs = [0; MAX_POLICIES];
    let mut ends = [0; MAX_POLICIES];
    for (i, (stored, limit)) in stored.iter().zip(limits).enumerate() {
        if limit.window > 0 {
            let (end, count) = fixed_window(now, *stored, limit.window);
            // Refused until the window ends: the earliest instant it would pass.
            let over = if count + cost > limit.burst {
                end - now
            } else {
                0
            };
            if !limit.shadow {
                retry_after = retry_after.max(over);
            }
            (tats[i], new_tats[i], overs[i], ends[i]) =
                (end + count, end + count + cost, over, end);
            continue;
        }
        // A stored tat is never legitimately past now + B·T (admission keeps it there); one
        // that is came from a clock that stepped back, and costs at most one window.
        let tat = stored.map_or(now, |t| t.max(now).min(now + limit.tolerance()));
        let new_tat = tat + cost * limit.interval;
        let over = new_tat - now - limit.tolerance();
        if !limit.shadow {
            retry_after = retry_after.max(over);
        }
        (tats[i], new_tats[i], overs[i]) = (tat, new_tat, over);
    }
    let allowed = retry_after <= 0;
    for (i, limit) in limits.iter().enumerate() {
        // A shadow policy that would refuse keeps its state: storing `tat` (at least now,
        // at most now + B·T) is the same as storing nothing.
        if limit.shadow && overs[i] > 0 {
            new_tats[i] = tats[i];
        }
    }
    let states = limits
        .iter()
        .enumerate()
        .map(|(i, limit)| {
            // Report the state after this request if it is admitted, before it otherwise.
            let after = if allowed { new_tats[i] } else { tats[i] };
            let (remaining, reset_after) = if limit.window > 0 {
                let left = limit.burst - (after - ends[i]);
                (u64::try_from(left).unwrap_or(0), ends[i] - now)
            } else {
                (remaining(now, after, *limit), after - now)
            };
            PolicyState {
                remaining,
                reset_after: micros(reset_after),
                retry_after: (overs[i] > 0).then(|| micros(overs[i])),
            }
        })
        .collect();
    Evaluation {
        allowed,
        retry_after: retry_after.max(0),
        states,
        new_tats,
    }
}

/// Whole cells still available: `floor((B·T − (tat − now)) / T)`.
fn remaining(now: i64, tat: i64, limit: Limit) -> u64 {
    let free = limit.tolerance() - (tat - now);
    u64::try_from(free.div_euclid(limit.interval)).unwrap_or(0)
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE_100: Limit = Limit {
        interval: 600_000,
        burst: 100,
        shadow: false,
        window: 0,
    };

    #[test]
    fn a_shadow_policy_reports_but_never_refuses() {
        let shadow = Limit {
            interval: 1_000_000,
            burst: 2,
            shadow: true,
            window: 0,
        };
        let mut tats = [None, None];
        for i in 0..5 {
            let e = evaluate(0, &tats, &[MINUTE_100, shadow], 1);
            assert!(e.allowed, "request {i}: the shadow policy does not refuse");
            assert_eq!(e.states[1].retry_after.is_some(), i >= 2, "request {i}");
            assert_eq!(
                e.states[0].remaining,
                99 - i as u64,
                "the enforced one is charged"
            );
            tats = [Some(e.writes(1)[0]), Some(e.writes(1)[1])];
        }
        // Charged only while it fitted: two cells, as an enforced policy would hold.
        assert_eq!(tats[1], Some(2_000_000));
        // The enforced policy still refuses alone.
        let full = [Some(60_000_000), tats[1]];
        assert!(!evaluate(0, &full, &[MINUTE_100, shadow], 1).allowed);
    }

    #[test]
    fn a_full_burst_then_one_every_interval() {
        let mut tat = None;
        for i in 0..100 {
            let e = evaluate(0, &[tat], &[MINUTE_100], 1);
            assert!(e.allowed, "request {i}");
            assert_eq!(e.states[0].remaining, 99 - i);
            tat = Some(e.writes(1)[0]);
        }
        let e = evaluate(0, &[tat], &[MINUTE_100], 1);
        assert!(!e.allowed);
        assert_eq!(e.retry_after, 600_000);
        assert!(e.writes(1).is_empty(), "a refusal writes nothing");
        assert!(!evaluate(599_999, &[tat], &[MINUTE_100], 1).allowed);
        assert!(evaluate(600_000, &[tat], &[MINUTE_100], 1).allowed);
    }

    #[test]
    fn several_policies_are_all_or_nothing() {
        let strict = Limit {
            interval: 1_000_000,
            burst: 1,
            shadow: false,
            window: 0,
        };
        let loose = MINUTE_100;
        let first = evaluate(0, &[None, None], &[loose, strict], 1);
        assert!(first.allowed);
        let tats: Vec<_> = first.writes(1).iter().map(|&w| Some(w)).collect();
        let second = evaluate(0, &tats, &[loose, strict], 1);
        assert!(!second.allowed);
        assert!(second.writes(1).is_empty());
        assert_eq!(
            second.states[0].remaining, 99,
            "the loose policy was not charged"
        );
        assert_eq!(second.states[0].retry_after, None);
        assert_eq!(second.states[1].retry_after, Some(Duration::from_secs(1)));
    }

    #[test]
    fn peek_charges_nothing() {
        let e = evaluate(5, &[Some(600_005)], &[MINUTE_100], 0);
        assert!(e.allowed);
        assert!(e.writes(0).is_empty());
        assert_eq!(e.states[0].remaining, 99);
    }

    fn limit() -> impl Strategy<Value = Limit> {
        (1i64..5_000_000, 1i64..50).prop_map(|(interval, burst)| Limit {
            interval,
            burst,
            shadow: false,
            window: 0,
        })
    }

    #[test]
    fn a_fixed_window_admits_its_count_then_refuses_until_its_end() {
        let minute = Limit {
            interval: 600_000,
            burst: 100,
            shadow: false,
            window: 60_000_000,
        };
        // 10 s into a window: the 100 fit, the 101st waits the 50 s left.
        let now = 120_000_000 + 10_000_000;
        let mut state = None;
        for i in 0..100 {
            let e = evaluate(now + i, &[state], &[minute], 1);
            assert!(e.allowed, "request {i}");
            assert_eq!(e.states[0].remaining, 99 - i as u64);
            assert_eq!(e.states[0].reset_after, micros(50_000_000 - i));
            state = Some(e.writes(1)[0]);
        }
        let e = evaluate(now + 100, &[state], &[minute], 1);
        assert!(!e.allowed);
        assert_eq!(e.retry_after, 50_000_000 - 100, "the window's end");
        assert!(e.writes(1).is_empty());
        // The next window starts afresh.
        let e = evaluate(180_000_000, &[state], &[minute], 1);
        assert!(e.allowed);
        assert_eq!(e.states[0].remaining, 99);
        // A stored number is its own expiry: window end + count.
        assert_eq!(state, Some(180_000_000 + 100));
    }

    /// The reference: count what was admitted in each aligned window.
    fn fixed_window_reference(trace: &[(i64, i64)], window: i64, capacity: i64) -> Vec<bool> {
        let mut counts = std::collections::HashMap::new();
        trace
            .iter()
            .map(|&(at, cost)| {
                let count = counts.entry(at.div_euclid(window)).or_insert(0);
                let admit = *count + cost <= capacity;
                if admit {
                    *count += cost;
                }
                admit
            })
            .collect()
    }

    proptest! {
        /// A fixed window decides exactly as counting per aligned window does, so it never
        /// admits more than its capacity in one; refusals name the window's end.
        #[test]
        fn fixed_windows_match_a_brute_force_count(
            window in 1_000i64..10_000_000,
            capacity in 1i64..20,
            gaps in prop::collection::vec((0i64..2_000_000, 1i64..4), 1..300),
        ) {
            let capacity = capacity.min(window - 1);
            let limit = Limit { interval: window / capacity, burst: capacity, shadow: false, window };
            let mut now = 1_700_000_000_000_000;
            let mut trace = Vec::new();
            for (gap, cost) in gaps {
                now += gap;
                trace.push((now, cost.min(capacity)));
            }
            let expected = fixed_window_reference(&trace, window, capacity);
            let mut state = None;
            for (&(at, cost), &admit) in trace.iter().zip(&expected) {
                let e = evaluate(at, &[state], &[limit], cost);
                prop_assert_eq!(e.allowed, admit, "at {} cost {}", at, cost);
                if e.allowed {
                    state = Some(e.writes(cost)[0]);
                } else {
                    prop_assert_eq!(e.retry_after, (at.div_euclid(window) + 1) * window - at);
                }
            }
        }

        /// In any window of length t, admitted cost <= B + t/T (the GCRA bound).
        #[test]
        fn admitted_never_exceeds_burst_plus_elapsed(
            limit in limit(),
            gaps in prop::collection::vec((0i64..3_000_000, 1i64..4), 1..200),
        ) {
            let mut tat = None;
            let mut now = 0;
            let mut admitted: Vec<(i64, i64)> = Vec::new();
            for (gap, cost) in gaps {
                now += gap;
                let cost = cost.min(limit.burst);
                let e = evaluate(now, &[tat], &[limit], cost);
                if e.allowed {
                    tat = Some(e.writes(cost)[0]);
                    admitted.push((now, cost));
                }
            }
            for (i, &(start, _)) in admitted.iter().enumerate() {
                let mut total = 0;
                for &(at, cost) in &admitted[i..] {
                    total += cost;
                    let elapsed = at - start;
                    prop_assert!(
                        total * limit.interval <= limit.burst * limit.interval + elapsed,
                        "admitted {total} in {elapsed}us with T={} B={}", limit.interval, limit.burst
                    );
                }
            }
        }

        /// A refused client that waits exactly retry_after is admitted.
        #[test]
        fn waiting_retry_after_admits(
            limit in limit(),
            gaps in prop::collection::vec(0i64..1_000_000, 1..100),
            cost in 1i64..4,
        ) {
            let cost = cost.min(limit.burst);
            let mut tat = None;
            let mut now = 0;
            for gap in gaps {
                now += gap;
                let e = evaluate(now, &[tat], &[limit], cost);
                if e.allowed {
                    tat = Some(e.writes(cost)[0]);
                } else {
                    prop_assert!(e.retry_after > 0);
                    let later = evaluate(now + e.retry_after, &[tat], &[limit], cost);
                    prop_assert!(later.allowed);
                    let earlier = evaluate(now + e.retry_after - 1, &[tat], &[limit], cost);
                    prop_assert!(!earlier.allowed, "retry_after is the earliest time");
                }
            }
        }
    }

    #[test]
    fn a_state_from_a_clock_that_stepped_back_costs_one_window_at_most() {
        let hour = 3_600_000_000;
        let e = evaluate(1_000, &[Some(1_000 + 10 * hour)], &[MINUTE_100], 1);
        assert!(!e.allowed);
        assert!(e.retry_after <= MINUTE_100.interval, "{}", e.retry_after);
    }
}
