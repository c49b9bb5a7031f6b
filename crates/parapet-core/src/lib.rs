//! What every parapet middleware shares.
//!
//! - [`RedisHandle`]: one cheap-to-clone handle on Redis (standalone or Cluster) that every
//!   middleware of an app can share, with a deadline on every call.
//! - [`StoreError`] and the [`OnStoreError`] policy: what a store call can fail with, and
//!   what a middleware does when it does.
//! - [`KeyPrefix`] and [`HashTag`]: the `{prefix}:{kind}:{tag}:…` key layout, with
//!   user-controlled parts hashed so they cannot collide across namespaces or leak secrets.
//! - [`Clock`]: monotonic time, injectable in tests ([`ManualClock`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), parapet_core::StoreError> {
//! use std::time::Duration;
//! use parapet_core::RedisHandle;
//!
//! let redis = RedisHandle::builder("redis://127.0.0.1:6379")
//!     .timeout(Duration::from_millis(50))
//!     .build()
//!     .await?;
//! let pong: String = redis.query(&redis::cmd("PING")).await?;
//! assert_eq!(pong, "PONG");
//! # Ok(()) }
//! ```
//!
//! ## Choices
//!
//! - Connections: a multiplexed [`redis::aio::ConnectionManager`] by default. It pipelines
//!   every concurrent request over one socket and reconnects by itself. The `deadpool-redis`
//!   pool is available ([`Connection::Pool`]) but measured slower here: it checks each
//!   connection out with an extra `UNWATCH`+`PING` round trip (see `BENCHMARKS.md`).
//! - Hashing: SHA-256 (`sha2`) for key parts, because they may be secrets (API keys) and the
//!   tag must be the same on every instance; truncated to 128 bits.
//! - Redis Cluster: the `redis` crate's `cluster-async` client.

mod clock;
mod error;
mod key;
mod on_store_error;
mod redis_handle;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::StoreError;
pub use key::{HashTag, KeyPrefix, is_key_word};
pub use on_store_error::OnStoreError;
pub use redis_handle::{Connection, RedisBuilder, RedisHandle};

/// The `redis` crate this version of parapet is built on, for commands and scripts.
pub use redis;
