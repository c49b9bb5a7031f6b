//! One handle on Redis, shared by every middleware of an app.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, ScriptInvocation, ServerErrorKind, Value,
};

use crate::StoreError;

/// The default deadline of one call: long enough for a loopback or same-zone round trip under
/// load, short enough that a request never waits long on a sick Redis.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// A cheap-to-clone handle on Redis (standalone or Cluster) with a deadline on every call.
///
/// Build it once with [`RedisHandle::builder`] (a `redis://` or `rediss://` URL) or
/// [`RedisHandle::cluster`] (seed nodes) and hand clones to every middleware.
#[derive(Clone)]
pub struct RedisHandle {
    connection: Connection,
    timeout: Duration,
}

/// How a [`RedisHandle`] talks to Redis.
#[derive(Clone)]
#[non_exhaustive]
pub enum Connection {
    /// One multiplexed connection that pipelines concurrent calls and reconnects by itself
    /// (the default).
    Multiplexed(ConnectionManager),
    /// A `deadpool-redis` pool of multiplexed connections.
    Pool(deadpool_redis::Pool),
    /// A Redis Cluster connection that routes each call by its keys' slot.
    Cluster(ClusterConnection),
}

impl fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.connection {
            Connection::Multiplexed(_) => "multiplexed",
            Connection::Pool(_) => "pool",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisHandle")
            .field("connection", &kind)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Builds a [`RedisHandle`].
#[derive(Debug, Clone)]
pub struct RedisBuilder {
    nodes: Vec<String>,
    cluster: bool,
    pool_size: Option<usize>,
    timeout: Duration,
}

impl RedisHandle {
    /// A handle on one Redis server, from a `redis://` or `rediss://` (feature `tls`) URL.
    pub fn builder(url: impl Into<String>) -> RedisBuilder {
        RedisBuilder {
            nodes: vec![url.into()],
            cluster: false,
            pool_size: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A handle on a Redis Cluster, from the URLs of one or more of its nodes.
    pub fn cluster<I, S>(nodes: I) -> RedisBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisBuilder {
            nodes: nodes.into_iter().map(Into::into).collect(),
            cluster: true,
            pool_size: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A clone of this handle whose calls have another deadline (same connections).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            connection: self.connection.clone(),
            timeout,
        }
    }

    /// The underlying connection, for commands this handle does not wrap.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Runs a script (`EVALSHA`, loading it on `NOSCRIPT`) within the deadline.
    ///
    /// A script cache flushed again between the load and the retry (`SCRIPT FLUSH` in a
    /// loop, a failover) is survived too: the load-and-retry is repeated up to three times.
    /// On Cluster, every key of the invocation must share one hash tag.
    pub async fn eval<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.deadline(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.eval_once(invocation).await {
                    Err(StoreError::Redis(e))
                        if attempt < 3
                            && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {}
                    other => return other,
                }
            }
        })
        .await
    }

    async fn eval_once<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        Ok(invocation.invoke_async(&mut self.live().await?).await?)
    }

    /// Runs one command within the deadline.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.deadline(async move { Ok(cmd.query_async(&mut self.live().await?).await?) })
            .await
    }

    /// A connection to send one call on: a clone of the shared one, or one from the pool.
    async fn live(&self) -> Result<Live, StoreError> {
        Ok(match &self.connection {
            Connection::Multiplexed(conn) => Live::Multiplexed(conn.clone()),
            Connection::Cluster(conn) => Live::Cluster(conn.clone()),
            Connection::Pool(pool) => Live::Pooled(
                pool.get()
                    .await
                    .map_err(|e| StoreError::Pool(Box::new(e)))?,
            ),
        })
    }

    async fn deadline<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.timeout)))
    }
}

impl RedisBuilder {
    /// The deadline of each call (default 100 ms). Middlewares may set a shorter one of their
    /// own with [`RedisHandle::with_timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Use a `deadpool-redis` pool of `max_size` connections instead of one multiplexed
    /// connection (standalone only).
    pub fn pool(mut self, max_size: usize) -> Self {
        self.pool_size = Some(max_size);
        self
    }

    /// Opens the connection. Standalone connections are made lazily, so this succeeds while
    /// Redis is down and the first calls fail (within their deadline) until it is up; a
    /// Cluster connection must reach a seed node now, to learn the slot map.
    pub async fn build(self) -> Result<RedisHandle, StoreError> {
        if self.timeout.is_zero() {
            return Err(StoreError::InvalidConfig(
                "timeout must be above zero".into(),
            ));
        }
        let connection = if self.cluster {
            if self.pool_size.is_some() {
                return Err(StoreError::InvalidConfig(
                    "a pool is for standalone Redis; a cluster connection multiplexes already"
                        .into(),
                ));
            }
            let client = redis::cluster::ClusterClient::builder(self.nodes)
                .connection_timeout(self.timeout)
                .response_timeout(self.timeout)
                .retries(1)
                .build()?;
            Connection::Cluster(client.get_async_connection().await?)
        } else {
            let [url] = <[String; 1]>::try_from(self.nodes).map_err(|_| {
                StoreError::InvalidConfig("a standalone handle takes exactly one URL".into())
            })?;
            match self.pool_size {
                Some(size) => {
                    let pool = deadpool_redis::Config::from_url(url)
                        .builder()
                        .map_err(|e| StoreError::InvalidConfig(e.to_string()))?
                        .max_size(size)
                        .wait_timeout(Some(self.timeout))
                        .create_timeout(Some(self.timeout))
                        .recycle_timeout(Some(self.timeout))
                        .runtime(deadpool_redis::Runtime::Tokio1)
                        .build()
                        .map_err(|e| StoreError::InvalidConfig(e.to_string()))?;
                    Connection::Pool(pool)
                }
                None => {
                    let client = redis::Client::open(url)?;
                    // Short back-off: after Redis comes back, calls resume within ~200 ms.
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout))
                        .set_number_of_retries(1)
                        .set_min_delay(Duration::from_millis(10))
                        .set_max_delay(Duration::from_millis(200));
                    Connection::Multiplexed(ConnectionManager::new_lazy_with_config(
                        client, config,
                    )?)
                }
            }
        };
        Ok(RedisHandle {
            connection,
            timeout: self.timeout,
        })
    }
}

/// A connection taken for one call: it sends every command to the connection it holds.
enum Live {
    Multiplexed(ConnectionManager),
    Cluster(ClusterConnection),
    Pooled(deadpool_redis::Connection),
}

impl ConnectionLike for Live {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Multiplexed(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
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
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Pooled(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Multiplexed(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
            Self::Pooled(conn) => conn.get_db(),
        }
    }
}
