//! The connection kinds behind a handle; private, so redis-rs and deadpool types stay out
//! of the public API.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
#[cfg(feature = "cluster")]
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::StoreError;

#[derive(Clone)]
pub(crate) enum Connection {
    /// One multiplexed connection that pipelines concurrent calls and reconnects by itself
    /// (the default).
    Multiplexed(ConnectionManager),
    /// A `deadpool-redis` pool of connections.
    #[cfg(feature = "pool")]
    Pool(deadpool_redis::Pool),
    /// A Redis Cluster connection that routes each call by its keys' slot.
    #[cfg(feature = "cluster")]
    Cluster(ClusterConnection),
}

impl Connection {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Multiplexed(_) => "multiplexed",
            #[cfg(feature = "pool")]
            Self::Pool(_) => "pool",
            #[cfg(feature = "cluster")]
            Self::Cluster(_) => "cluster",
        }
    }

    pub(crate) async fn live(&self) -> Result<Live, StoreError> {
        Ok(match self {
            Self::Multiplexed(conn) => Live::Multiplexed(conn.clone()),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => Live::Cluster(conn.clone()),
            #[cfg(feature = "pool")]
            // Boxed: deadpool's wait future is about 14 KB, and held inline it would make
            // every call's future that size, moved by every caller, pool or not.
            Self::Pool(pool) => Live::Pooled(
                Box::pin(pool.get())
                    .await
                    .map_err(|e| StoreError::Pool(Box::new(e)))?,
            ),
        })
    }
}

#[cfg(feature = "pool")]
pub(crate) fn pool(url: &str, size: usize, timeout: Duration) -> Result<Connection, StoreError> {
    let pool = deadpool_redis::Config::from_url(url)
        .builder()
        .map_err(|e| StoreError::InvalidConfig(e.to_string()))?
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::InvalidConfig(e.to_string()))?;
    Ok(Connection::Pool(pool))
}

#[cfg(not(feature = "pool"))]
pub(crate) fn pool(_: &str, _: usize, _: Duration) -> Result<Connection, StoreError> {
    Err(StoreError::InvalidConfig(
        "a connection pool needs the `pool` feature".into(),
    ))
}

/// A connection taken for one call: it sends every command to the connection it holds.
pub(crate) enum Live {
    Multiplexed(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(ClusterConnection),
    #[cfg(feature = "pool")]
    Pooled(deadpool_redis::Connection),
}

impl ConnectionLike for Live {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Multiplexed(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "pool")]
            Self::Pooled(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Multiplexed(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "pool")]
            Self::Pooled(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Multiplexed(conn) => conn.get_db(),
            #[cfg(feature = "cluster")]
            Self::Cluster(conn) => conn.get_db(),
            #[cfg(feature = "pool")]
            Self::Pooled(conn) => conn.get_db(),
        }
    }
}
