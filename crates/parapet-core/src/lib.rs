//! What every parapet middleware shares.
//!
//! - [`RedisHandle`]: one cheap-to-clone handle on Redis (standalone, or Cluster with
//!   feature `cluster`) that every middleware of an app can share, with a deadline on every
//!   call, [`Script`]s that survive `SCRIPT FLUSH`, and a start-up [`ping`](RedisHandle::ping).
//! - [`StoreError`] and the [`OnStoreError`] policy: what a store call can fail with, and
//!   what a middleware does when it does; [`Breaker`] and [`FailureLog`] keep a sick Redis
//!   from costing every request a deadline and every failure a log line.
//! - [`Keyspace`]: the `{prefix}:{kind}:{tag}:…` key layout, with user-controlled parts
//!   hashed (keyed by a [`KeySecret`] if you give one) so they cannot collide across
//!   namespaces or be read back from a Redis dump.
//! - [`PeerIp`] and [`ClientIp`]: the client's address, which a client cannot forge behind
//!   trusted proxies; [`Subject`]: who state is kept for.
//! - [`RequestHead`], [`ResponseBody`], [`Problem`]: the request and response types every
//!   layer uses, so none needs axum.
//! - [`FanOut`]: every instance hears of a change within milliseconds, announced by the
//!   same script that makes it, with a bound on how stale a local replica may be.
//! - [`table`]: the bounded in-process table the memory stores are built on.
//! - [`Clock`]: monotonic time, injectable in tests ([`ManualClock`]).
//! - [`Personal`]: the mark of what a response depended on that is one client's own (its
//!   session, its token), which the cache honours on whichever side of the marking layer it
//!   stands; [`decision_fields`]: the per-request rate-limit fields no cache may store.
//!
//! ```no_run
//! # async fn run() -> Result<(), parapet_core::StoreError> {
//! use std::time::Duration;
//! use parapet_core::{Command, RedisHandle};
//!
//! let redis = RedisHandle::builder("redis://127.0.0.1:6379")
//!     .timeout(Duration::from_millis(50))
//!     .build()
//!     .await?;
//! redis.ping().await?;
//! let pong: String = redis.query(&Command::new("PING")).await?;
//! assert_eq!(pong, "PONG");
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | adds |
//! |---|---|
//! | `cluster` | `RedisHandle::cluster`, through redis-rs's cluster client |
//! | `pool` | `RedisBuilder::pool`, a `deadpool-redis` pool |
//! | `tls` | `rediss://` URLs |
//! | `axum` | [`PeerIp`] reads axum's `ConnectInfo<SocketAddr>` |
//! | `tonic` | [`PeerIp`] reads tonic's `TcpConnectInfo` |
//!
//! ## Choices
//!
//! - Connections: a multiplexed redis-rs `ConnectionManager` by default. It pipelines every
//!   concurrent request over one socket and reconnects by itself. The `deadpool-redis` pool
//!   is measured slower here: it checks each connection out with an extra `UNWATCH`+`PING`
//!   round trip (see `BENCHMARKS.md`). No type of either crate is part of this API.
//! - Hashing: SHA-256 (`sha2`) for key parts, HMAC (`hmac`, RFC 2104) when a secret is
//!   given; truncated to 128 bits.
//! - Client addresses: our own right-to-left parser (see [`ClientIp`]); `ipnet` for CIDRs.
//!
//! ## Running Redis for parapet
//!
//! Give parapet its own Redis, or a database with headroom, and set `maxmemory-policy
//! noeviction`, with an alert on `used_memory` near `maxmemory`. Every key parapet writes
//! has a TTL, so under an eviction policy (`volatile-*`, `allkeys-*`) Redis would silently
//! delete live state when full: rate-limit counters start afresh and bans end early. Under
//! `noeviction` a full Redis refuses writes instead, which parapet reports as
//! [`StoreError::OutOfMemory`] (metric kind `oom`) and handles by each middleware's
//! documented [`OnStoreError`] policy.

pub mod address;
mod body;
mod breaker;
mod clock;
mod cookie_lines;
pub mod decision_fields;
mod error;
mod failure_log;
pub mod fanout;
pub mod grpc;
mod key;
pub mod metrics;
mod on_store_error;
mod personal;
mod problem;
mod redis_handle;
mod request_head;
mod store_call;
mod subject;
pub mod table;

pub use address::{ClientIp, ClientIpError, ForwardedHeader, PeerIp};
pub use body::ResponseBody;
pub use breaker::{Breaker, Permit};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cookie_lines::{cookie_line, cookie_lines};
pub use error::{ConfigError, SharedCall, SharedFailure, StoreError};
pub use failure_log::FailureLog;
pub use fanout::FanOut;
pub use key::{HashTag, KeyPrefix, KeySecret, Keyspace, is_key_word};
pub use on_store_error::OnStoreError;
pub use personal::{Personal, PersonalInput};
pub use problem::Problem;
pub use redis_handle::{Command, FromReply, RedisBuilder, RedisHandle, Script, ScriptCall, ToArg};
pub use request_head::RequestHead;
pub use store_call::StoreCall;
pub use subject::Subject;
