//! Real `redis-server` processes for parapet's tests and benches.
//!
//! Nothing here is a mock: [`RedisServer::start`] runs the `redis-server` binary on a free
//! loopback port with a temporary directory of its own, and [`RedisCluster::start`] runs three
//! of them as a 3-master Redis Cluster with every slot assigned. Each process is watched by a
//! small shell loop that kills it when the test process goes away, so a crashed or killed test
//! leaves no server behind; `Drop` stops it earlier in the normal case.
//!
//! When `redis-server` is not installed, starting a server panics with a message that says to
//! run `scripts/test`, which installs it: a test that needs Redis never skips silently.
//!
//! ```no_run
//! let server = parapet_testkit::RedisServer::start();
//! assert_eq!(server.command(&["PING"]), "+PONG");
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test kit fails loudly by design

mod cluster;
mod resp;
mod server;

pub use cluster::RedisCluster;
pub use server::RedisServer;

/// Sends one command to the server on `port` (127.0.0.1) and returns the reply as text;
/// for threads that do not own the [`RedisServer`].
pub fn command(port: u16, args: &[&str]) -> String {
    resp::command(port, args)
        .unwrap_or_else(|e| panic!("redis command {args:?} on port {port}: {e}"))
}
