//! The fan-out: every instance learns of a change within milliseconds.
//!
//! Redis holds the truth; instances keep local state derived from it (the rate limiter's
//! deny cache, the response cache's memory tier, the JWT guard's revocation replica). A
//! change is written and **announced in the same Lua script** (`redis.call('PUBLISH', …)`
//! right after the write), so no change can be made without its announcement, nor announced
//! without being made. Each instance subscribes to the channel and applies what it hears.
//!
//! Pub/sub delivers at most once: a subscriber that was disconnected may have missed
//! announcements. So after every (re)subscription the subscriber first emits
//! [`Event::Resync`], on which the user must rebuild (or drop) its local state from Redis,
//! and only then counts as current again. While it is not current, [`FanOut::is_current`]
//! says so and the middleware applies its documented staleness policy.
//!
//! Staleness is bounded: every `heartbeat` the subscriber sends `PING` on its subscribed
//! connection. Redis answers in order with the messages, so a `PONG` proves every
//! announcement made before the `PING` was sent has been delivered (and applied: the
//! buffered ones are applied before the confirmation is recorded). If no confirmation is
//! newer than `staleness`, the replica is not current.
//!
//! On Redis Cluster a `PUBLISH` reaches the subscribers of every node; the fan-out
//! subscribes on **every master** and is current only while all of them confirm, so the
//! loss of one node cannot hide announcements. Handlers must be idempotent: a message
//! arrives once per master. When a subscription stays down for two seconds (a failover gave
//! the slots to a replica at another address), the masters are listed again and every node
//! subscribed afresh, so the replica recovers by itself.
//!
//! ## Why pub/sub from the script, not server-assisted invalidation
//!
//! RESP3 `CLIENT TRACKING … BCAST PREFIX` would have Redis announce every write, expiry and
//! eviction under a prefix by itself. Both deliver within about 0.1 ms on loopback
//! (`benches/fanout.rs`, figures in `BENCHMARKS.md`). Tracking was not chosen because (1) a
//! rate limiter's counters change on every admitted request, so tracking a prefix pushes one
//! invalidation per decision to every instance (measured: 1.001 messages per decision, against
//! 0 for script announcements), where we need one per administrative change (reset, unban,
//! allow); scripts announce exactly the changes that matter; (2) it requires
//! RESP3 and a connection redirect per node, and redis-rs's cluster client does not route
//! tracking; (3) the same channel carries payloads (which token was revoked) that a
//! key-name invalidation does not. The price of our choice is that an announcement must be
//! written in each script that changes shared state; the scripts live next to the stores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::task::AbortHandle;

use crate::redis_handle::Endpoints;
use crate::{RedisHandle, StoreError};

/// What a subscriber hands to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// An announcement's payload.
    Message(&'a [u8]),
    /// Announcements may have been missed (first subscription, or after a disconnect):
    /// rebuild or drop local state derived from Redis.
    Resync,
}

type Handler = dyn Fn(Event<'_>) + Send + Sync;

/// A subscription to one announcement channel (see the module docs).
///
/// Cheap to clone; the subscriber tasks start on first use inside a Tokio runtime
/// ([`start`](Self::start) or [`is_current`](Self::is_current)) and stop when the last
/// clone is dropped.
///
/// ```no_run
/// # async fn run() -> Result<(), parapet_core::StoreError> {
/// use std::time::Duration;
/// use parapet_core::{FanOut, RedisHandle, fanout::Event};
///
/// let redis = RedisHandle::builder("redis://127.0.0.1:6379").build().await?;
/// let fanout = FanOut::new(&redis, "parapet:rl:changes", |event| match event {
///     Event::Message(payload) => println!("changed: {} bytes", payload.len()),
///     Event::Resync => println!("dropping local state"),
///     _ => {}
/// });
/// fanout.start();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FanOut {
    shared: Arc<Shared>,
}

struct Shared {
    run: Arc<Run>,
    tasks: OnceLock<Vec<AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in self.tasks.get().into_iter().flatten() {
            task.abort();
        }
    }
}

/// What the subscriber tasks share.
struct Run {
    endpoints: Arc<Endpoints>,
    channel: String,
    handler: Box<Handler>,
    heartbeat: Duration,
    staleness: Duration,
    connect_timeout: Duration,
    origin: Instant,
    /// µs since `origin` of the oldest confirmation among the subscribed nodes, 0 while any
    /// of them is not subscribed: all that `is_current` reads.
    confirmed: AtomicU64,
    /// µs since `origin` of the newest such confirmation ever made (0: none yet); not reset
    /// when a subscription is lost.
    last_confirmed: AtomicU64,
}

/// How long a subscription may stay down before the nodes are listed again.
const REDISCOVER_AFTER: Duration = Duration::from_secs(2);

impl FanOut {
    /// A subscription to `channel` on the servers behind `redis`, calling `handler` for every
    /// event: a heartbeat every 100 ms, current while confirmed within 500 ms.
    pub fn new(
        redis: &RedisHandle,
        channel: impl Into<String>,
        handler: impl Fn(Event<'_>) + Send + Sync + 'static,
    ) -> Self {
        Self::build(
            redis,
            channel.into(),
            Duration::from_millis(100),
            Duration::from_millis(500),
            Box::new(handler),
        )
    }

    /// [`new`](Self::new) with another heartbeat and staleness bound (the bound at least
    /// twice the heartbeat).
    pub fn with_timing(
        redis: &RedisHandle,
        channel: impl Into<String>,
        heartbeat: Duration,
        staleness: Duration,
        handler: impl Fn(Event<'_>) + Send + Sync + 'static,
    ) -> Result<Self, StoreError> {
        if heartbeat.is_zero() || staleness < heartbeat * 2 {
            return Err(StoreError::InvalidConfig(
                "fan-out staleness must be at least twice its heartbeat".into(),
            ));
        }
        Ok(Self::build(
            redis,
            channel.into(),
            heartbeat,
            staleness,
            Box::new(handler),
        ))
    }

    fn build(
        redis: &RedisHandle,
        channel: String,
        heartbeat: Duration,
        staleness: Duration,
        handler: Box<Handler>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                run: Arc::new(Run {
                    endpoints: redis.endpoints.clone(),
                    channel,
                    handler,
                    heartbeat,
                    staleness,
                    connect_timeout: redis.timeout().max(Duration::from_millis(100)),
                    origin: Instant::now(),
                    confirmed: AtomicU64::new(0),
                    last_confirmed: AtomicU64::new(0),
                }),
                tasks: OnceLock::new(),
            }),
        }
    }

    /// How long a confirmation counts.
    pub fn staleness(&self) -> Duration {
        self.shared.run.staleness
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.shared.run.channel
    }

    /// Starts the subscriber tasks if they are not running and a Tokio runtime is at hand.
    pub fn start(&self) {
        if self.shared.tasks.get().is_some() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.shared.tasks.get_or_init(|| {
                let run = self.shared.run.clone();
                vec![runtime.spawn(run.supervise()).abort_handle()]
            });
        }
    }

    /// True while every subscribed node has confirmed the subscription within the
    /// staleness bound, so that local state reflects every announcement made until then.
    pub fn is_current(&self) -> bool {
        self.start();
        let run = &self.shared.run;
        let confirmed = run.confirmed.load(Ordering::Acquire);
        let bound = u64::try_from(run.staleness.as_micros()).unwrap_or(u64::MAX);
        confirmed != 0 && run.micros().saturating_sub(confirmed) <= bound
    }

    /// How long ago every subscribed node last confirmed the subscription, lost since or
    /// not (`None` before the first confirmation): a middleware can tell a subscription
    /// lost a moment ago, likely back within milliseconds, from a Redis down for a while.
    pub fn last_confirmed(&self) -> Option<Duration> {
        let run = &self.shared.run;
        let last = run.last_confirmed.load(Ordering::Acquire);
        (last != 0).then(|| Duration::from_micros(run.micros().saturating_sub(last)))
    }
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("channel", &self.shared.run.channel)
            .field("heartbeat", &self.shared.run.heartbeat)
            .field("staleness", &self.shared.run.staleness)
            .finish_non_exhaustive()
    }
}

impl Run {
    /// µs since `origin`, at least 1 (0 means "not subscribed").
    fn micros(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Finds the nodes to subscribe on and runs one subscriber per node; every heartbeat,
    /// publishes their oldest confirmation. Lists the nodes again when a subscription stays
    /// down (a Cluster failover moved a master).
    async fn supervise(self: Arc<Self>) {
        loop {
            let clients = loop {
                match self.nodes().await {
                    Ok(clients) if !clients.is_empty() => break clients,
                    Ok(_) => {}
                    Err(e) => tracing::debug!("fan-out cannot list the nodes yet: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let rediscover = self.is_cluster();
            let slots: Arc<[AtomicU64]> = clients.iter().map(|_| AtomicU64::new(0)).collect();
            let mut subscribers = tokio::task::JoinSet::new();
            for (index, client) in clients.into_iter().enumerate() {
                subscribers.spawn(self.clone().subscribe(slots.clone(), index, client));
            }
            let mut tick = tokio::time::interval(self.heartbeat);
            let mut down_since: Option<Instant> = None;
            loop {
                tick.tick().await;
                let oldest = self.publish_confirmed(&slots);
                if oldest != 0 {
                    down_since = None;
                } else if rediscover
                    && down_since.get_or_insert_with(Instant::now).elapsed() >= REDISCOVER_AFTER
                {
                    break;
                }
            }
            // Dropping the set aborts the subscribers of the old topology.
            drop(subscribers);
            self.confirmed.store(0, Ordering::Release);
        }
    }

    /// Publishes the oldest confirmation among `slots` (0 while any is unsubscribed), and
    /// returns it.
    fn publish_confirmed(&self, slots: &[AtomicU64]) -> u64 {
        let oldest = slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(0);
        self.confirmed.store(oldest, Ordering::Release);
        if oldest != 0 {
            self.last_confirmed.fetch_max(oldest, Ordering::AcqRel);
        }
        oldest
    }

    fn is_cluster(&self) -> bool {
        !matches!(&*self.endpoints, Endpoints::Standalone(_))
    }

    /// The clients of the nodes to subscribe on: the server, or every Cluster master.
    async fn nodes(&self) -> Result<Vec<redis::Client>, StoreError> {
        match &*self.endpoints {
            Endpoints::Standalone(client) => Ok(vec![(**client).clone()]),
            #[cfg(feature = "cluster")]
            Endpoints::Cluster(seeds, root) => {
                cluster_masters(seeds, root.as_deref(), self.connect_timeout).await
            }
        }
    }

    /// Subscribes on one node, forever: resubscribes after any failure.
    async fn subscribe(
        self: Arc<Self>,
        slots: Arc<[AtomicU64]>,
        index: usize,
        client: redis::Client,
    ) {
        let slot = &slots[index];
        const FIRST_BACKOFF: Duration = Duration::from_millis(10);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            let outcome = self.session(&slots, index, &client).await;
            slot.store(0, Ordering::Release);
            // A subscription known lost is not current from now, not from the next tick.
            self.confirmed.store(0, Ordering::Release);
            if let Err(e) = outcome {
                tracing::debug!(channel = %self.channel, "fan-out subscription lost: {e}");
            }
            // A session that lasted was healthy: the next failure starts the back-off afresh.
            if started.elapsed() > self.staleness {
                backoff = FIRST_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// One subscribed connection, until it fails; `slots[index]` holds its last
    /// confirmation.
    async fn session(
        &self,
        slots: &[AtomicU64],
        index: usize,
        client: &redis::Client,
    ) -> Result<(), StoreError> {
        let slot = &slots[index];
        let pubsub = tokio::time::timeout(self.connect_timeout, client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Timeout(self.connect_timeout))?
            .map_err(StoreError::from_redis)?;
        let (mut sink, mut stream) = pubsub.split();
        tokio::time::timeout(self.connect_timeout, sink.subscribe(&self.channel))
            .await
            .map_err(|_| StoreError::Timeout(self.connect_timeout))?
            .map_err(StoreError::from_redis)?;
        // Whatever was announced while we were not listening is lost: rebuild first.
        (self.handler)(Event::Resync);
        slot.store(self.micros(), Ordering::Release);
        // Current again now, not at the next heartbeat tick.
        self.publish_confirmed(slots);
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => {
                    let message = message.ok_or(StoreError::UnexpectedReply("subscription closed"))?;
                    (self.handler)(Event::Message(message.get_payload_bytes()));
                }
                _ = heartbeat.tick() => {
                    let sent = self.micros();
                    tokio::time::timeout(self.staleness, sink.ping::<redis::Value>())
                        .await
                        .map_err(|_| StoreError::Timeout(self.staleness))?
                        .map_err(StoreError::from_redis)?;
                    // Messages sent before the PONG are buffered: apply them before the
                    // confirmation says they were.
                    while let Some(Some(message)) = futures_util::FutureExt::now_or_never(stream.next()) {
                        (self.handler)(Event::Message(message.get_payload_bytes()));
                    }
                    slot.store(sent, Ordering::Release);
                }
            }
        }
    }
}

/// The masters of the cluster the seeds belong to (`CLUSTER NODES` on the first seed that
/// answers), as clients with the seed's scheme and credentials.
#[cfg(feature = "cluster")]
async fn cluster_masters(
    seeds: &[String],
    root_certificate: Option<&[u8]>,
    timeout: Duration,
) -> Result<Vec<redis::Client>, StoreError> {
    let mut last = StoreError::InvalidConfig("no cluster seed".into());
    for seed in seeds {
        let listing = async {
            let client = crate::redis_handle::client_for(seed, root_certificate)?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(StoreError::from_redis)?;
            redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(&mut conn)
                .await
                .map_err(StoreError::from_redis)
        };
        match tokio::time::timeout(timeout, listing).await {
            Ok(Ok(nodes)) => {
                return masters(&nodes)
                    .map(|addr| {
                        crate::redis_handle::client_for(
                            &with_authority(seed, &addr),
                            root_certificate,
                        )
                    })
                    .collect();
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = StoreError::Timeout(timeout),
        }
    }
    Err(last)
}

/// `host:port` of every master that is not failing, from `CLUSTER NODES` output.
#[cfg(any(feature = "cluster", test))]
fn masters(nodes: &str) -> impl Iterator<Item = String> + '_ {
    nodes.lines().filter_map(|line| {
        let mut fields = line.split(' ');
        let address = fields.nth(1)?;
        let flags = fields.next()?;
        let flags: Vec<&str> = flags.split(',').collect();
        if !flags.contains(&"master") || flags.iter().any(|f| matches!(*f, "fail" | "noaddr")) {
            return None;
        }
        let host_port = address.split(['@', ',']).next()?;
        (!host_port.starts_with(':')).then(|| host_port.to_owned())
    })
}

/// `url` with its `host:port` replaced by `authority` (user-info and path kept).
#[cfg(any(feature = "cluster", test))]
fn with_authority(url: &str, authority: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("redis://{authority}");
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (host_part, path) = rest.split_at(end);
    let user = host_part.rfind('@').map_or("", |at| &host_part[..=at]);
    format!("{scheme}://{user}{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,node-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 :0@0 master,noaddr - 0 0 0 disconnected
";
        let got: Vec<String> = masters(nodes).collect();
        assert_eq!(got, ["127.0.0.1:7000", "127.0.0.1:7001"]);
    }

    #[test]
    fn authority_is_replaced_and_credentials_kept() {
        assert_eq!(
            with_authority("redis://:pw@10.0.0.1:6379/0", "10.0.0.2:7000"),
            "redis://:pw@10.0.0.2:7000/0"
        );
        assert_eq!(
            with_authority("rediss://seed:6379", "10.0.0.2:7000"),
            "rediss://10.0.0.2:7000"
        );
    }
}
