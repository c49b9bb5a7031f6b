//! Where rate-limit state lives: in this process ([`MemoryStore`]) or in Redis
//! ([`RedisStore`]). Both implement [`RateLimitStore`] with the same GCRA decision, and one
//! conformance suite (`tests/conformance.rs`) runs against both.

mod batch;
mod hot_keys;
mod memory;
mod redis;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

pub use hot_keys::HotKeyStore;
pub use memory::MemoryStore;
pub use parapet_core::table::WhenFull;
use parapet_core::{FanOut, StoreCall, StoreError};
pub use redis::RedisStore;

use crate::{Decision, PolicySet, Subject};

/// The atomic operations the rate limiter needs from a store.
///
/// Every method is one atomic step on the store: `check` decides and charges all the
/// policies of a set in one go, and also answers bans and the shared allow list, so a Redis
/// store needs one round trip per request decision. Each method checks its own arguments
/// (a cost above a policy's burst, a zero duration) and answers
/// [`StoreError::InvalidArgument`] rather than a wrong decision.
pub trait RateLimitStore: Debug + Send + Sync + 'static {
    /// Charges `cost` to every policy of `policies` for `subject`, all or nothing. A `cost`
    /// of 0 reads the state without charging.
    fn check(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<Decision>;

    /// Gives back what one admitted request of `cost` was charged under `policies` (used by
    /// `refund_when`): each policy's state moves back by `cost` cells, never below "no
    /// state". The default answers [`StoreError::InvalidArgument`]: a store that cannot
    /// refund says so.
    fn refund(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<()> {
        let _ = (subject, policies, cost);
        StoreCall::ready(Err(StoreError::InvalidArgument(
            "this rate-limit store cannot refund",
        )))
    }

    /// Forgets the state of `subject` under `policies` (not its ban or allow entry).
    fn reset(&self, subject: &Subject, policies: &PolicySet) -> StoreCall<()>;

    /// Refuses every request of `subject` for `duration`.
    fn ban(&self, subject: &Subject, duration: Duration) -> StoreCall<()>;

    /// Lifts a ban.
    fn unban(&self, subject: &Subject) -> StoreCall<()>;

    /// Lets every request of `subject` through, uncounted, for `duration`.
    fn allow(&self, subject: &Subject, duration: Duration) -> StoreCall<()>;

    /// Takes `subject` off the allow list.
    fn unallow(&self, subject: &Subject) -> StoreCall<()>;

    /// True when a call leaves the process, so that a local deny cache saves round trips.
    fn is_remote(&self) -> bool;

    /// For a remote store shared by several instances: a subscription that calls
    /// `on_change` whenever any instance resets, bans, unbans, allows or unallows a subject
    /// (and after any gap in which such announcements may have been missed), so every
    /// instance's deny cache forgets refusals that no longer hold. `None` (the default):
    /// the store announces nothing, and cached refusals last until they end.
    fn changes(&self, on_change: Arc<dyn Fn() + Send + Sync>) -> Option<FanOut> {
        let _ = on_change;
        None
    }
}

/// The checks every store makes on `check`'s arguments.
pub(crate) fn check_cost(policies: &PolicySet, cost: u32) -> Result<(), StoreError> {
    if cost > policies.min_burst().0 {
        return Err(StoreError::InvalidArgument(
            "the cost exceeds a policy's burst: it could never be admitted",
        ));
    }
    Ok(())
}

/// The checks every store makes on a ban's or allow entry's duration: above zero, and at
/// most ten years (so the end stays an exact integer in the Redis script's doubles).
pub(crate) fn check_duration(duration: Duration) -> Result<i64, StoreError> {
    const TEN_YEARS: u128 = 10 * 365 * 86_400 * 1_000_000;
    let micros = duration.as_micros();
    if micros == 0 || micros > TEN_YEARS {
        return Err(StoreError::InvalidArgument(
            "a ban or allow duration must be between 1 µs and ten years",
        ));
    }
    Ok(micros as i64) // at most ten years of µs: fits
}
