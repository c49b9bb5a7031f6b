//! Where rate-limit state lives: in this process ([`MemoryStore`]) or in Redis
//! ([`RedisStore`]). Both implement [`RateLimitStore`] with the same GCRA decision, and one
//! conformance suite (`tests/conformance.rs`) runs against both.

mod call;
mod memory;
mod redis;
pub(crate) mod table;

use std::fmt::Debug;
use std::time::Duration;

pub use call::StoreCall;
pub use memory::MemoryStore;
pub use redis::RedisStore;

use crate::{Decision, PolicySet, Subject};

/// The atomic operations the rate limiter needs from a store.
///
/// Every method is one atomic step on the store: `check` decides and charges all the
/// policies of a set in one go, and also answers bans and the shared allow list, so a Redis
/// store needs one round trip per request decision.
pub trait RateLimitStore: Debug + Send + Sync + 'static {
    /// Charges `cost` to every policy of `policies` for `subject`, all or nothing. A `cost`
    /// of 0 reads the state without charging.
    fn check(&self, subject: &Subject, policies: &PolicySet, cost: u32) -> StoreCall<Decision>;

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
}
