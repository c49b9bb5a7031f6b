//! The fan-out's two candidate designs, measured side by side on one local Redis:
//!
//! - **script PUBLISH** (what parapet does): a change is announced by `PUBLISH` in the Lua
//!   script that writes it; instances subscribe with `FanOut`.
//! - **server-assisted invalidation**: a RESP3 connection with `CLIENT TRACKING ON BCAST
//!   PREFIX parapet:`, to which Redis pushes an invalidation for every write under the prefix.
//!
//! For each: the delay from a write until a subscriber has heard of it (p50/p99 of 200
//! sequential writes), and the messages each instance receives per rate-limit decision
//! (1,000 admitted decisions of a `RedisStore`).
//!
//! `cargo bench -p parapet-benches --bench fanout`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parapet_testkit::RedisServer;
use tokio::sync::mpsc;
use tower_parapet::core::fanout::Event;
use tower_parapet::core::{FanOut, RedisHandle, Script, Subject};
use tower_parapet::ratelimit::{Policy, PolicySet, Quota, RateLimitStore, RedisStore};

const WRITES: usize = 200;
const DECISIONS: u32 = 1_000;

fn percentiles(mut delays: Vec<Duration>) -> (Duration, Duration) {
    delays.sort();
    (delays[delays.len() / 2], delays[delays.len() * 99 / 100])
}

async fn decisions(redis: &RedisHandle) {
    let store = RedisStore::new(redis.clone()).unwrap();
    let set = PolicySet::from(Policy::new("bench", Quota::per_second(1_000_000)).unwrap());
    for i in 0..DECISIONS {
        let subject = Subject::new("bench", i.to_le_bytes());
        store.check(&subject, &set, 1).await.unwrap();
    }
}

/// Waits until `counter` stops moving (the last messages have arrived).
async fn settle(counter: &AtomicU64) -> u64 {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = counter.load(Ordering::Relaxed);
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn script_publish(server: &RedisServer) -> (Duration, Duration, f64) {
    let redis = RedisHandle::builder(server.url()).build().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let counted = Arc::new(AtomicU64::new(0));
    let count = counted.clone();
    let fanout = FanOut::new(&redis, "parapet:rl:changes", move |event| {
        if let Event::Message(_) = event {
            count.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Instant::now());
        }
    });
    while !fanout.is_current() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let write = Script::new(
        "redis.call('SET', KEYS[1], ARGV[2]); redis.call('PUBLISH', ARGV[1], ARGV[2]); return 1",
    );
    let mut delays = Vec::new();
    for i in 0..WRITES {
        let mut call = write.call(1);
        call.key("parapet:bench:k").arg("parapet:rl:changes").arg(i);
        let started = Instant::now();
        let _: i64 = redis.eval(&call).await.unwrap();
        let arrived = rx.recv().await.unwrap();
        delays.push(arrived - started);
    }
    let before = settle(&counted).await;
    decisions(&redis).await;
    let after = settle(&counted).await;
    let (p50, p99) = percentiles(delays);
    (p50, p99, (after - before) as f64 / f64::from(DECISIONS))
}

async fn client_tracking(server: &RedisServer) -> (Duration, Duration, f64) {
    let redis = RedisHandle::builder(server.url()).build().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<redis::PushInfo>();
    let client = redis::Client::open(format!("{}?protocol=resp3", server.url())).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut tracking = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg("parapet:")
        .query_async::<()>(&mut tracking)
        .await
        .unwrap();
    let mut writer = client.get_multiplexed_async_connection().await.unwrap();
    let mut delays = Vec::new();
    for i in 0..WRITES {
        let started = Instant::now();
        redis::cmd("SET")
            .arg("parapet:bench:k")
            .arg(i)
            .query_async::<()>(&mut writer)
            .await
            .unwrap();
        loop {
            let push = rx.recv().await.unwrap();
            if push.kind == redis::PushKind::Invalidate {
                break;
            }
        }
        delays.push(started.elapsed());
    }
    let counted = Arc::new(AtomicU64::new(0));
    let count = counted.clone();
    let drain = tokio::spawn(async move {
        while let Some(push) = rx.recv().await {
            if push.kind == redis::PushKind::Invalidate {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let before = settle(&counted).await;
    decisions(&redis).await;
    let after = settle(&counted).await;
    drain.abort();
    let (p50, p99) = percentiles(delays);
    (p50, p99, (after - before) as f64 / f64::from(DECISIONS))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let rows = runtime.block_on(async {
        vec![
            ("script PUBLISH (parapet)", script_publish(&server).await),
            ("CLIENT TRACKING BCAST", client_tracking(&server).await),
        ]
    });
    println!("| design | delay p50 | delay p99 | messages per instance per decision |");
    println!("|---|---:|---:|---:|");
    for (name, (p50, p99, per_decision)) in rows {
        println!("| {name} | {p50:?} | {p99:?} | {per_decision:.3} |");
    }
}
