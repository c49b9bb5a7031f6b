//! One handle on Redis, shared by every middleware of an app.

mod command;
mod connection;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use command::{Command, FromReply, Script, ScriptCall, ToArg};
pub(crate) use connection::Connection;
use connection::Live;

use crate::StoreError;

/// The default deadline of one call: long enough for a loopback or same-zone round trip under
/// load, short enough that a request never waits long on a sick Redis.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// A cheap-to-clone handle on Redis (standalone or Cluster) with a deadline on every call.
///
/// Build it once with [`RedisHandle::builder`] (a `redis://` or `rediss://` URL) or
/// `RedisHandle::cluster` (seed nodes, feature `cluster`) and hand clones to every
/// middleware. [`ping`](Self::ping) checks at start that Redis answers.
///
/// A call that misses its deadline returns [`StoreError::Timeout`] at once, but the command
/// was sent and **may still be applied** by Redis later: callers decide as if it failed and
/// must not assume it was not run.
#[derive(Clone)]
pub struct RedisHandle {
    connection: Connection,
    timeout: Duration,
    /// The connection's own response timeout: no call may wait longer.
    max_timeout: Duration,
    /// Where it connects, with any password replaced by `***` (for messages).
    target: Arc<str>,
    /// What a subscriber connects to (the fan-out).
    pub(crate) endpoints: Arc<Endpoints>,
}

/// The servers behind a handle, for connections of their own (subscriptions).
pub(crate) enum Endpoints {
    Standalone(Box<redis::Client>),
    /// The seeds, and the root certificate (PEM) to trust for `rediss://`, if one was given.
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>, Option<Vec<u8>>),
}

impl fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHandle")
            .field("target", &self.target)
            .field("connection", &self.connection.kind())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Builds a [`RedisHandle`].
#[derive(Clone)]
pub struct RedisBuilder {
    nodes: Vec<String>,
    cluster: bool,
    pool_size: Option<usize>,
    timeout: Duration,
    /// A root certificate (PEM) to trust for `rediss://` instead of the system's.
    root_certificate: Option<Vec<u8>>,
}

impl fmt::Debug for RedisBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBuilder")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| redact(n)).collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisHandle {
    /// A handle on one Redis server, from a `redis://` or `rediss://` (feature `tls`) URL.
    pub fn builder(url: impl Into<String>) -> RedisBuilder {
        RedisBuilder {
            nodes: vec![url.into()],
            cluster: false,
            pool_size: None,
            root_certificate: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A handle on a Redis Cluster, from the URLs of one or more of its nodes.
    #[cfg(feature = "cluster")]
    pub fn cluster<I, S>(nodes: I) -> RedisBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisBuilder {
            nodes: nodes.into_iter().map(Into::into).collect(),
            cluster: true,
            pool_size: None,
            root_certificate: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Where this handle connects, any password replaced by `***`: for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// True for a Redis Cluster handle.
    pub fn is_cluster(&self) -> bool {
        self.connection.kind() == "cluster"
    }

    /// A clone of this handle whose calls have another deadline (same connections).
    ///
    /// The deadline cannot exceed the one the handle was built with, which is also the
    /// connection's own response timeout: a longer one is an error, never a silent cap.
    pub fn with_timeout(&self, timeout: Duration) -> Result<Self, StoreError> {
        if timeout.is_zero() || timeout > self.max_timeout {
            return Err(StoreError::InvalidConfig(format!(
                "a call deadline of {timeout:?} must be above zero and at most the Redis \
                 handle's {:?} (raise it with RedisHandle::builder(..).timeout(..))",
                self.max_timeout
            )));
        }
        Ok(Self {
            timeout,
            ..self.clone()
        })
    }

    /// Checks that Redis answers `PING` within the deadline: call it at start to fail fast
    /// with a clear message instead of failing every request later.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query(&Command::new("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::UnexpectedReply("PING answered without PONG"))
        }
    }

    /// Runs a script (`EVALSHA`, then `EVAL` on `NOSCRIPT`) within the deadline.
    ///
    /// On Cluster, every key of the call must share one hash tag: the call goes to that
    /// slot's node and nowhere else. Redirections (`MOVED`, `ASK`) are followed within the
    /// same deadline. While a slot is being migrated, Redis refuses calls with several keys
    /// in it (`TRYAGAIN`): they are retried a few times, 2–20 ms apart, then fail within the
    /// deadline, and the middleware's store-error policy applies for the subjects of that
    /// slot until the migration ends.
    pub async fn eval<T: FromReply>(&self, call: &ScriptCall) -> Result<T, StoreError> {
        let evalsha = call.evalsha()?;
        self.deadline(async move {
            let mut live = self.live().await?;
            match evalsha.query_async::<T>(&mut live).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    call.eval()
                        .query_async::<T>(&mut live)
                        .await
                        .map_err(StoreError::from_redis)
                }
                other => other.map_err(StoreError::from_redis),
            }
        })
        .await
    }

    /// Loads `script` into the server's script cache (`SCRIPT LOAD`; on Cluster, on every
    /// primary), so the first calls after a start find it: without it, a first burst of
    /// `EVALSHA` calls fails with `NOSCRIPT` and each is sent again as `EVAL`.
    pub async fn load_script(&self, script: &Script) -> Result<(), StoreError> {
        let mut cmd = Command::new("SCRIPT");
        cmd.arg("LOAD").arg(script.code());
        let _: String = self.query(&cmd).await?;
        Ok(())
    }

    /// Runs one command within the deadline.
    pub async fn query<T: FromReply>(&self, cmd: &Command) -> Result<T, StoreError> {
        self.deadline(async move {
            let mut live = self.live().await?;
            cmd.0
                .query_async(&mut live)
                .await
                .map_err(StoreError::from_redis)
        })
        .await
    }

    /// A connection to send one call on: a clone of the shared one, or one from the pool.
    async fn live(&self) -> Result<Live, StoreError> {
        self.connection.live().await
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
    /// The deadline of each call, and the connection's response timeout (default 100 ms).
    /// Middlewares may set a shorter one of their own with [`RedisHandle::with_timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trust this root certificate (PEM) for `rediss://` URLs instead of the system's trust
    /// store: a Redis behind a private CA (feature `tls`). The server's name must match its
    /// certificate.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// Use a `deadpool-redis` pool of `max_size` connections instead of one multiplexed
    /// connection (standalone only).
    #[cfg(feature = "pool")]
    pub fn pool(mut self, max_size: usize) -> Self {
        self.pool_size = Some(max_size);
        self
    }

    /// Opens the connection. Standalone connections are made lazily, so this succeeds while
    /// Redis is down and the first calls fail (within their deadline) until it is up: call
    /// [`RedisHandle::ping`] to check now. A Cluster connection must reach a seed node now,
    /// to learn the slot map.
    pub async fn build(self) -> Result<RedisHandle, StoreError> {
        if self.timeout.is_zero() {
            return Err(StoreError::InvalidConfig(
                "timeout must be above zero".into(),
            ));
        }
        let target: Arc<str> = self
            .nodes
            .iter()
            .map(|n| redact(n))
            .collect::<Vec<_>>()
            .join(",")
            .into();
        let (connection, endpoints) = if self.cluster {
            self.cluster_connection().await?
        } else {
            self.standalone_connection()?
        };
        Ok(RedisHandle {
            connection,
            timeout: self.timeout,
            max_timeout: self.timeout,
            target,
            endpoints: Arc::new(endpoints),
        })
    }

    #[cfg(feature = "cluster")]
    async fn cluster_connection(&self) -> Result<(Connection, Endpoints), StoreError> {
        if self.pool_size.is_some() {
            return Err(StoreError::InvalidConfig(
                "a pool is for standalone Redis; a cluster connection multiplexes already".into(),
            ));
        }
        let builder = redis::cluster::ClusterClient::builder(self.nodes.clone());
        #[cfg(feature = "tls")]
        let builder = match &self.root_certificate {
            Some(pem) => builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            }),
            None => builder,
        };
        let client = builder
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout)
            // Redirections and TRYAGAIN during a slot migration: retried quickly, and the
            // call's deadline bounds the whole.
            .retries(4)
            .min_retry_wait(2)
            .max_retry_wait(20)
            .build()
            .map_err(StoreError::from_redis)?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(StoreError::from_redis)?;
        Ok((
            Connection::Cluster(connection),
            Endpoints::Cluster(self.nodes.clone(), self.root_certificate.clone()),
        ))
    }

    #[cfg(not(feature = "cluster"))]
    async fn cluster_connection(&self) -> Result<(Connection, Endpoints), StoreError> {
        Err(StoreError::InvalidConfig(
            "Redis Cluster needs the `cluster` feature".into(),
        ))
    }

    fn standalone_connection(&self) -> Result<(Connection, Endpoints), StoreError> {
        let [url] = self.nodes.as_slice() else {
            return Err(StoreError::InvalidConfig(
                "a standalone handle takes exactly one URL".into(),
            ));
        };
        let client = client_for(url, self.root_certificate.as_deref())?;
        if let Some(size) = self.pool_size {
            if self.root_certificate.is_some() {
                return Err(StoreError::InvalidConfig(
                    "a private root certificate is not supported with a pool".into(),
                ));
            }
            return Ok((
                connection::pool(url, size, self.timeout)?,
                Endpoints::Standalone(Box::new(client)),
            ));
        }
        // Short back-off: after Redis comes back, calls resume within ~200 ms.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(StoreError::from_redis)?;
        Ok((
            Connection::Multiplexed(manager),
            Endpoints::Standalone(Box::new(client)),
        ))
    }
}

/// A client for `url`, trusting `root_certificate` (PEM) for `rediss://` if given.
pub(crate) fn client_for(
    url: &str,
    root_certificate: Option<&[u8]>,
) -> Result<redis::Client, StoreError> {
    let invalid = |e: redis::RedisError| {
        StoreError::InvalidConfig(format!("redis URL {} is not valid: {e}", redact(url)))
    };
    #[cfg(feature = "tls")]
    if url.starts_with("rediss://") {
        ensure_crypto_provider();
    }
    match root_certificate {
        #[cfg(feature = "tls")]
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )
        .map_err(invalid),
        _ => redis::Client::open(url).map_err(invalid),
    }
}

/// rustls needs a process-wide crypto provider, and cannot pick one by itself when an app
/// enables both of its backends (`ring` and `aws-lc-rs`, through different crates): a
/// `rediss://` connection would then panic. Unless the app installed one, install `ring`.
#[cfg(feature = "tls")]
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one at the same moment: either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A Redis URL with its credentials replaced by `***`: everything between `://` and the
/// last `@` (a password may hold `/` or `@` unencoded), and the values of the query
/// parameters redis-rs reads credentials from (`user`, `username`, `pass`, `password`).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    match rest.rfind('@') {
        Some(at) => {
            out.push_str("***@");
            out.push_str(&rest[at + 1..]);
        }
        None => out.push_str(rest),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            if ["user", "username", "pass", "password"]
                .iter()
                .any(|secret| name.eq_ignore_ascii_case(secret))
            {
                out.push_str(name);
                out.push_str("=***");
            } else {
                out.push_str(pair);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("redis://user:hunter2@db.internal:6380/2"),
            "redis://***@db.internal:6380/2"
        );
        assert_eq!(redact("rediss://:hunter2@db"), "rediss://***@db");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("hunter2"), "***");
        assert_eq!(redact("redis://:ab/cd@host:6379"), "redis://***@host:6379");
        assert_eq!(
            redact("redis+unix:///run/redis.sock?db=1&pass=hunter2&user=app"),
            "redis+unix:///run/redis.sock?db=1&pass=***&user=***"
        );
    }

    #[tokio::test]
    async fn no_debug_output_shows_the_password() {
        let builder = RedisHandle::builder("redis://app:hunter2@127.0.0.1:1/0");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let handle = builder.build().await.unwrap();
        assert!(!format!("{handle:?}").contains("hunter2"));
        assert_eq!(handle.target(), "redis://***@127.0.0.1:1/0");
        let bad = RedisHandle::builder("redis://app:hunter2@[::1")
            .build()
            .await;
        assert!(!bad.unwrap_err().to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn a_longer_deadline_than_the_connection_allows_is_an_error() {
        let handle = RedisHandle::builder("redis://127.0.0.1:1")
            .timeout(Duration::from_millis(100))
            .build()
            .await
            .unwrap();
        assert!(handle.with_timeout(Duration::from_millis(50)).is_ok());
        let err = handle
            .with_timeout(Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most the Redis handle's 100ms"), "{err}");
        assert!(handle.with_timeout(Duration::ZERO).is_err());
    }
}
