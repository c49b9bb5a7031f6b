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

use crate::limits::sliding_log::SlidingLog;
use crate::{Algorithm, PolicyState};

/// A policy's parameters: for GCRA the emission interval `T` in µs and burst `B`; for a
/// fixed or sliding window, its length `window` in µs and the cells it admits (`burst`).
/// A shadow policy is decided and reported but never refuses (see [`evaluate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) algorithm: Algorithm,
    pub(crate) interval: i64,
    pub(crate) burst: i64,
    pub(crate) shadow: bool,
    /// The window's length in µs (0 for GCRA).
    pub(crate) window: i64,
}

impl Limit {
    fn tolerance(self) -> i64 {
        self.interval * self.burst
    }

    /// What one cell moves the stored number by: `T` for GCRA, 1 for a fixed window (whose
    /// number is `window end + count`); 0 for a sliding window, whose refunds drop the
    /// newest stamps instead. Refunds step back by it.
    pub(crate) fn step(self) -> i64 {
        match self.algorithm {
            Algorithm::Gcra => self.interval,
            Algorithm::FixedWindow => 1,
            Algorithm::SlidingWindow => 0,
        }
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
    /// [`must_write`](Self::must_write). A sliding window's log is charged instead, when
    /// its entry of `charged` says so.
    pub(crate) new_tats: [i64; MAX_POLICIES],
    /// Whether each policy is charged when the decision is written (a shadow policy the
    /// request does not fit in is not).
    pub(crate) charged: [bool; MAX_POLICIES],
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

/// [`evaluate_with`] for policies without sliding windows.
#[cfg(test)]
pub(crate) fn evaluate(
    now: i64,
    stored: &[Option<i64>],
    limits: &[Limit],
    cost: i64,
) -> Evaluation {
    evaluate_with(now, stored, &[], limits, cost)
}

/// Charges `cost` cells to every policy at `now`, given each policy's stored `tat` (GCRA,
/// fixed window) or log (sliding window: `logs[i]`, `None` or missing for no log).
///
/// Shadow policies take no part in the verdict: the request is admitted or refused by the
/// others alone. An admitted request charges a shadow policy only if it fits in it, as if
/// that policy were a limiter of its own, so that its state is the one it would have had
/// enforced; its state reports `retry_after` when it would have refused.
pub(crate) fn evaluate_with(
    now: i64,
    stored: &[Option<i64>],
    logs: &[Option<&SlidingLog>],
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
        if limit.algorithm == Algorithm::SlidingWindow {
            let log = logs.get(i).copied().flatten();
            let count = log.map_or(0, |log| log.count(now));
            // Refused until enough of the oldest cells leave the window: the k-th oldest
            // leaves at its stamp + window (at most a window away, should the clock have
            // stepped back).
            let over = if count + cost > limit.burst {
                let k = count + cost - limit.burst;
                log.and_then(|log| log.nth(now, k - 1))
                    .map_or(limit.window, |s| {
                        (s + limit.window - now).clamp(1, limit.window)
                    })
            } else {
                0
            };
            if !limit.shadow {
                retry_after = retry_after.max(over);
            }
            (tats[i], new_tats[i], overs[i]) = (count, count + cost, over);
            continue;
        }
        if limit.algorithm == Algorithm::FixedWindow {
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
    let mut charged = [false; MAX_POLICIES];
    for (i, limit) in limits.iter().enumerate() {
        // A shadow policy that would refuse keeps its state: storing `tat` (at least now,
        // at most now + B·T) is the same as storing nothing.
        charged[i] = allowed && !(limit.shadow && overs[i] > 0);
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
            let (remaining, reset_after) = match limit.algorithm {
                Algorithm::FixedWindow => {
                    let left = limit.burst - (after - ends[i]);
                    (u64::try_from(left).unwrap_or(0), ends[i] - now)
                }
                Algorithm::SlidingWindow => {
                    // Full again when the newest cell leaves: one charged now, or the log's.
                    let newest = logs.get(i).copied().flatten().and_then(SlidingLog::newest);
                    let newest = if charged[i] && cost > 0 {
                        Some(newest.map_or(now, |n| n.max(now)))
                    } else {
                        newest.filter(|_| tats[i] > 0)
                    };
                    let left = limit.burst - if charged[i] { new_tats[i] } else { tats[i] };
                    (
                        u64::try_from(left).unwrap_or(0),
                        newest.map_or(0, |n| n + limit.window - now),
                    )
                }
                Algorithm::Gcra => (remaining(now, after, *limit), after - now),
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
        charged,
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
        algorithm: Algorithm::Gcra,
    };

    #[test]
    fn a_shadow_policy_reports_but_never_refuses() {
        let shadow = Limit {
            interval: 1_000_000,
            burst: 2,
            shadow: true,
            window: 0,
            algorithm: Algorithm::Gcra,
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
            algorithm: Algorithm::Gcra,
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
            algorithm: Algorithm::Gcra,
        })
    }

    #[test]
    fn a_fixed_window_admits_its_count_then_refuses_until_its_end() {
        let minute = Limit {
            interval: 600_000,
            burst: 100,
            shadow: false,
            window: 60_000_000,
            algorithm: Algorithm::FixedWindow,
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
            let limit = Limit { interval: window / capacity, burst: capacity, shadow: false, window, algorithm: Algorithm::FixedWindow };
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

    fn sliding(window: i64, capacity: i64, shadow: bool) -> Limit {
        Limit {
            algorithm: Algorithm::SlidingWindow,
            interval: (window + capacity - 1) / capacity,
            burst: capacity,
            shadow,
            window,
        }
    }

    /// Decides one request on a sliding window, charging `log` as the memory store does.
    fn decide_sliding(
        log: &mut Option<SlidingLog>,
        at: i64,
        limit: Limit,
        cost: i64,
    ) -> Evaluation {
        let e = evaluate_with(at, &[None], &[log.as_ref()], &[limit], cost);
        if e.must_write(cost) && e.charged[0] {
            log.get_or_insert_with(|| SlidingLog::new(limit.window))
                .charge(at, cost);
        }
        e
    }

    #[test]
    fn a_sliding_window_admits_n_in_any_window_and_names_when_the_oldest_leaves() {
        let limit = sliding(60_000_000, 3, false);
        let mut log = None;
        // Three at 0 s, 10 s and 20 s; the fourth at 30 s waits until the first leaves.
        for (i, at) in [0, 10_000_000, 20_000_000].into_iter().enumerate() {
            let e = decide_sliding(&mut log, at, limit, 1);
            assert!(e.allowed);
            assert_eq!(e.states[0].remaining, 2 - i as u64);
            assert_eq!(
                e.states[0].reset_after,
                micros(60_000_000),
                "the newest leaves"
            );
        }
        let e = decide_sliding(&mut log, 30_000_000, limit, 1);
        assert!(!e.allowed);
        assert_eq!(e.retry_after, 30_000_000, "the cell of 0 s leaves at 60 s");
        assert_eq!(e.states[0].remaining, 0);
        assert_eq!(
            e.states[0].reset_after,
            micros(50_000_000),
            "the cell of 20 s, at 80 s"
        );
        assert!(!decide_sliding(&mut log, 59_999_999, limit, 1).allowed);
        // A cost of two waits for the two oldest.
        assert_eq!(
            evaluate_with(60_000_000, &[None], &[log.as_ref()], &[limit], 2).retry_after,
            10_000_000
        );
        assert!(decide_sliding(&mut log, 60_000_000, limit, 1).allowed);
        assert_eq!(
            log.as_ref().map(SlidingLog::len),
            Some(3),
            "the stamp of 0 s went"
        );
        // A shadow sliding window reports but never refuses, and is charged only on a fit.
        let shadow = sliding(60_000_000, 1, true);
        let mut shadow_log = None;
        assert!(decide_sliding(&mut shadow_log, 0, shadow, 1).allowed);
        let e = decide_sliding(&mut shadow_log, 1, shadow, 1);
        assert!(e.allowed);
        assert_eq!(e.states[0].retry_after, Some(micros(59_999_999)));
        assert_eq!(shadow_log.as_ref().map(SlidingLog::len), Some(1));
    }

    /// The reference: every admitted cell, and a request fits when the cells of the last
    /// `window` (exclusive of its start) plus its cost are at most the capacity.
    fn sliding_reference_fits(
        admitted: &[(i64, i64)],
        at: i64,
        window: i64,
        capacity: i64,
        cost: i64,
    ) -> bool {
        let used: i64 = admitted
            .iter()
            .filter(|&&(t, _)| t > at - window && t <= at)
            .map(|&(_, c)| c)
            .sum();
        used + cost <= capacity
    }

    proptest! {
        /// A sliding window decides exactly as the brute-force log does; its Retry-After is
        /// the earliest instant the reference would admit; and no window of its length ever
        /// holds more than the capacity.
        #[test]
        fn sliding_windows_match_a_brute_force_log(
            window in 1_000i64..10_000_000,
            capacity in 1i64..20,
            gaps in prop::collection::vec((0i64..2_000_000, 1i64..4), 1..300),
        ) {
            let capacity = capacity.min(window - 1);
            let limit = sliding(window, capacity, false);
            let mut now = 1_700_000_000_000_000;
            let mut log = None;
            let mut admitted: Vec<(i64, i64)> = Vec::new();
            for (gap, cost) in gaps {
                now += gap;
                let cost = cost.min(capacity);
                let fits = sliding_reference_fits(&admitted, now, window, capacity, cost);
                let e = decide_sliding(&mut log, now, limit, cost);
                prop_assert_eq!(e.allowed, fits, "at {} cost {}", now, cost);
                if e.allowed {
                    admitted.push((now, cost));
                    prop_assert!(log.as_ref().is_some_and(|l| l.len() as i64 <= capacity));
                } else {
                    // The earliest instant is when some admitted cell leaves: t + window.
                    let earliest = admitted
                        .iter()
                        .map(|&(t, _)| t + window)
                        .filter(|&t| t > now)
                        .filter(|&t| sliding_reference_fits(&admitted, t, window, capacity, cost))
                        .min();
                    prop_assert_eq!(Some(now + e.retry_after), earliest);
                }
            }
            for &(start, _) in &admitted {
                let in_window: i64 = admitted
                    .iter()
                    .filter(|&&(t, _)| t >= start && t < start + window)
                    .map(|&(_, c)| c)
                    .sum();
                prop_assert!(in_window <= capacity, "{} in a window from {}", in_window, start);
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
