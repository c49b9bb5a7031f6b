//! Request collapsing: concurrent misses for one variant wait for one origin call.
//!
//! The first miss leads: it calls the origin. Others wait, at most `leader_timeout`, then
//! look the store up again. The leader's response is read into the store by the cache
//! (see `capture_body`), not at its client's pace; a leader that goes away before the
//! response arrives hands the flight to a waiter. Waiters are never handed the leader's response: they read what
//! the leader stored, and the store only ever holds responses any client may receive
//! (never `private`, never a `Set-Cookie` kept as is unless configured). When the leader's
//! answer cannot be stored, a hit-for-miss marker lets later requests go straight to the
//! origin for a while instead of queueing behind each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parapet_core::table::{Table, WhenFull};
use tokio::sync::watch;

use crate::StoredResponse;

/// How a flight ended.
#[derive(Debug, Clone)]
pub(crate) enum Landing {
    /// Still in the air.
    Flying,
    /// The leader's response was storable: this is it as stored (filtered exactly like a
    /// store hit), whether or not the store call itself succeeded.
    Stored(Arc<StoredResponse>),
    /// The leader's response could not be stored.
    NotStored,
    /// The leader went away before the origin answered (its client closed the
    /// connection): a waiter takes the flight over.
    Abandoned,
}

/// What a request does about a miss.
pub(crate) enum Role {
    /// Call the origin and report how it went through the guard.
    Leader(LeaderGuard),
    /// Wait for the leader.
    Waiter(watch::Receiver<Landing>),
    /// Go to the origin without waiting (hit-for-miss, or too many waiters).
    Alone,
}

#[derive(Debug)]
struct Flight {
    landing: watch::Sender<Landing>,
    waiters: usize,
}

/// The flights in progress and the hit-for-miss markers.
#[derive(Debug)]
pub(crate) struct Flights {
    flying: Mutex<HashMap<u64, Flight>>,
    hit_for_miss: Table,
    max_waiters: usize,
}

impl Flights {
    pub(crate) fn new(max_waiters: usize, markers: usize) -> Self {
        Self {
            flying: Mutex::default(),
            hit_for_miss: Table::new(markers, WhenFull::EvictNearestExpiry),
            max_waiters,
        }
    }

    pub(crate) fn hash(&self, bytes: &[u8]) -> u64 {
        self.hit_for_miss.hash(bytes)
    }

    /// The role of a request that missed on variant `h` at `now` (µs).
    pub(crate) fn board(self: &Arc<Self>, h: u64, now: i64) -> Role {
        if self.hit_for_miss.shard(h).get(h, now).is_some() {
            return Role::Alone;
        }
        let mut flying = self
            .flying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(flight) = flying.get_mut(&h) {
            if flight.waiters >= self.max_waiters {
                return Role::Alone;
            }
            flight.waiters += 1;
            return Role::Waiter(flight.landing.subscribe());
        }
        let (landing, _) = watch::channel(Landing::Flying);
        flying.insert(
            h,
            Flight {
                landing,
                waiters: 0,
            },
        );
        Role::Leader(LeaderGuard {
            flights: Arc::clone(self),
            h,
            landed: false,
            answered: false,
            on_land: None,
        })
    }

    fn land(&self, h: u64, landing: Landing) {
        let flight = self
            .flying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&h);
        if let Some(flight) = flight {
            flight.landing.send_replace(landing);
        }
    }

    /// How many variants have a flight in progress.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.flying.lock().map(|f| f.len()).unwrap_or(0)
    }
}

/// The leader's duty: report how its flight ended. Dropped without a report before the
/// origin answered (the client went away), it lands as [`Landing::Abandoned`]: one waiter
/// takes the flight over, the others wait for it. Dropped after an answer it lands as
/// [`Landing::NotStored`], with no hit-for-miss marker.
pub(crate) struct LeaderGuard {
    flights: Arc<Flights>,
    h: u64,
    landed: bool,
    /// The origin answered (or failed, or timed out): a guard dropped after this lands as
    /// not stored, not abandoned.
    answered: bool,
    /// Called once the flight has landed, however: releases a distributed lease.
    on_land: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for LeaderGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderGuard")
            .field("h", &self.h)
            .finish_non_exhaustive()
    }
}

impl LeaderGuard {
    /// Runs `f` when the flight lands (stored, not stored, or abandoned).
    pub(crate) fn on_land(&mut self, f: impl FnOnce() + Send + Sync + 'static) {
        self.on_land = Some(Box::new(f));
    }

    /// The origin call is over, however it went.
    pub(crate) fn answered(&mut self) {
        self.answered = true;
    }

    /// The response was storable (and stored, unless the store failed).
    pub(crate) fn stored(mut self, response: Arc<StoredResponse>) {
        self.landed = true;
        self.flights.land(self.h, Landing::Stored(response));
    }

    /// The response cannot be stored: for `for_how_long` from `now` (µs), misses on this
    /// variant go to the origin without waiting.
    pub(crate) fn not_stored(mut self, now: i64, for_how_long: Duration) {
        self.landed = true;
        if !for_how_long.is_zero() {
            let until =
                now.saturating_add(i64::try_from(for_how_long.as_micros()).unwrap_or(i64::MAX));
            let mut shard = self.flights.hit_for_miss.shard(self.h);
            let _ = shard.insert(self.h, until, now);
        }
        self.flights.land(self.h, Landing::NotStored);
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if !self.landed {
            // Gone before the origin answered: the request was dropped (its client went
            // away), and a waiter takes over. After an answer (an error, a timeout, an
            // answer not stored), waiters go on their own.
            let landing = if self.answered {
                Landing::NotStored
            } else {
                Landing::Abandoned
            };
            self.flights.land(self.h, landing);
        }
        if let Some(release) = self.on_land.take() {
            release();
        }
    }
}

/// Waits for the flight to land, at most `timeout`; `None` when it did not in time.
pub(crate) async fn wait(
    mut landing: watch::Receiver<Landing>,
    timeout: Duration,
) -> Option<Landing> {
    let landed =
        tokio::time::timeout(timeout, landing.wait_for(|l| !matches!(l, Landing::Flying))).await;
    match landed {
        Ok(Ok(l)) => Some(l.clone()),
        // The sender went away without a landing: as if abandoned.
        Ok(Err(_)) => Some(Landing::Abandoned),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_waiters_then_markers() {
        let flights = Arc::new(Flights::new(2, 100));
        let h = flights.hash(b"k");
        let Role::Leader(guard) = flights.board(h, 0) else {
            panic!("first is the leader")
        };
        let Role::Waiter(w1) = flights.board(h, 0) else {
            panic!("second waits")
        };
        let Role::Waiter(w2) = flights.board(h, 0) else {
            panic!("third waits")
        };
        assert!(matches!(flights.board(h, 0), Role::Alone), "waiter cap");
        let response = Arc::new(crate::stored::tests::sample());
        guard.stored(Arc::clone(&response));
        for w in [w1, w2] {
            let landed = wait(w, Duration::from_secs(1)).await;
            assert!(matches!(landed, Some(Landing::Stored(r)) if Arc::ptr_eq(&r, &response)));
        }
        assert_eq!(flights.in_flight(), 0);

        let Role::Leader(guard) = flights.board(h, 0) else {
            panic!("a new flight")
        };
        guard.not_stored(0, Duration::from_micros(10));
        assert!(matches!(flights.board(h, 5), Role::Alone), "hit-for-miss");
        assert!(
            matches!(flights.board(h, 10), Role::Leader(_)),
            "marker expired"
        );
    }

    #[tokio::test]
    async fn a_leader_dropped_after_an_answer_is_not_stored() {
        let flights = Arc::new(Flights::new(10, 100));
        let h = flights.hash(b"k");
        let Role::Leader(mut guard) = flights.board(h, 0) else {
            panic!("leader")
        };
        let Role::Waiter(w) = flights.board(h, 0) else {
            panic!("waiter")
        };
        guard.answered();
        drop(guard);
        assert!(matches!(
            wait(w, Duration::from_secs(1)).await,
            Some(Landing::NotStored)
        ));
        assert!(
            matches!(flights.board(h, 0), Role::Leader(_)),
            "no hit-for-miss marker"
        );
    }

    #[tokio::test]
    async fn a_dropped_leader_hands_its_flight_over() {
        let flights = Arc::new(Flights::new(10, 100));
        let h = flights.hash(b"k");
        let Role::Leader(guard) = flights.board(h, 0) else {
            panic!("leader")
        };
        let Role::Waiter(w) = flights.board(h, 0) else {
            panic!("waiter")
        };
        drop(guard);
        assert!(matches!(
            wait(w, Duration::from_secs(1)).await,
            Some(Landing::Abandoned)
        ));
        assert!(
            matches!(flights.board(h, 0), Role::Leader(_)),
            "the flight is free to take over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_leader_is_waited_for_only_so_long() {
        let flights = Arc::new(Flights::new(10, 100));
        let h = flights.hash(b"k");
        let Role::Leader(_guard) = flights.board(h, 0) else {
            panic!("leader")
        };
        let Role::Waiter(w) = flights.board(h, 0) else {
            panic!("waiter")
        };
        assert!(wait(w, Duration::from_millis(50)).await.is_none());
    }
}
