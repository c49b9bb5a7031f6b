//! What the criterion benches share: a current-thread runtime, and for those with a Redis
//! pair, a `redis-server` of their own with a handle on it.

use parapet_testkit::RedisServer;
use tokio::runtime::Runtime;
use tower_parapet::core::RedisHandle;

/// The runtime every criterion bench drives its service on.
pub fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The runtime, a server (stopped when dropped) and a handle on it.
#[allow(dead_code)] // not every bench including this module reads Redis
pub fn redis_on_current_thread() -> (Runtime, RedisServer, RedisHandle) {
    let runtime = current_thread();
    let server = RedisServer::start();
    let redis = runtime
        .block_on(RedisHandle::builder(server.url().as_str()).build())
        .unwrap();
    (runtime, server, redis)
}
