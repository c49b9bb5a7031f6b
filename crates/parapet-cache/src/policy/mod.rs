//! RFC 9111 shared-cache semantics as pure functions: what the layer asks before it stores,
//! serves or revalidates a response. Nothing here does I/O or reads a clock; times are
//! passed in.

mod cache_control;
mod freshness;
mod storability;

pub use cache_control::{CacheControl, Delta, Fields};
pub(crate) use freshness::single_date;
pub use freshness::{Heuristic, current_age, freshness_lifetime, is_heuristically_cacheable};
pub use storability::{NotStored, needs_explicit_freshness, storability};
