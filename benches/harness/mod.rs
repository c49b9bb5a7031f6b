//! What the load harnesses share: serving an app in this process, loading it over loopback
//! with keep-alive HTTP/1.1 connections, and reading the environment.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// With `--features mimalloc`, every harness built with this module (the load, scale and
/// memory harnesses; not the criterion benches) allocates through mimalloc: per-thread
/// heaps, no arena lock shared between the runtime's threads. A diagnostic of what
/// allocation costs; the memory harnesses' RSS changes with it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident bytes of this process, from `/proc/self/statm` (Linux; 0 elsewhere).
#[allow(dead_code)] // not every harness measures memory
pub fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A number from the environment, or `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub async fn serve(app: Router) -> SocketAddr {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // As a production server would: no Nagle delay on small responses.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    limited: AtomicU64,
    other: AtomicU64,
}

/// Keep-alive connections sending `GET path` back to back until `run` is over; counts
/// of 200, 429 and other answers.
#[allow(dead_code)] // the rate-limit harness calls `load_with_header` for every variant
pub async fn load(
    path: &'static str,
    addr: SocketAddr,
    conns: u64,
    run: Duration,
) -> (u64, u64, u64) {
    load_with(path, addr, conns, run, &[]).await
}

/// [`load`], connection `i` sending `Cookie: cookies[i % len]` (none when empty).
#[allow(dead_code)] // not every harness sends cookies
pub async fn load_with(
    path: &'static str,
    addr: SocketAddr,
    conns: u64,
    run: Duration,
    cookies: &[String],
) -> (u64, u64, u64) {
    load_with_header(path, addr, conns, run, "cookie", cookies).await
}

/// [`load`], connection `i` sending `name: values[i % len]` (none when empty).
pub async fn load_with_header(
    path: &'static str,
    addr: SocketAddr,
    conns: u64,
    run: Duration,
    name: &'static str,
    values: &[String],
) -> (u64, u64, u64) {
    let values: Vec<HeaderValue> = values.iter().map(|v| v.parse().unwrap()).collect();
    let headers = move |conn: u64, _: u64| {
        if values.is_empty() {
            Vec::new()
        } else {
            vec![(name, values[conn as usize % values.len()].clone())]
        }
    };
    load_each(path, addr, conns, run, Arc::new(headers)).await
}

/// The headers of one request, from its connection's index and the request's number
/// among all connections' requests.
pub type Headers = Arc<dyn Fn(u64, u64) -> Vec<(&'static str, HeaderValue)> + Send + Sync>;

/// Keep-alive connections sending `GET path` with `headers(conn, n)` back to back until
/// `run` is over; counts of 200, 429 and other answers.
pub async fn load_each(
    path: &'static str,
    addr: SocketAddr,
    conns: u64,
    run: Duration,
    headers: Headers,
) -> (u64, u64, u64) {
    let counts = Arc::new(Counts::default());
    let sequence = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (counts, sequence, headers) = (counts.clone(), sequence.clone(), headers.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            while Instant::now() < deadline {
                sender.ready().await.unwrap();
                let mut request = Request::get(path).header("host", "bench");
                for (name, value) in headers(i, sequence.fetch_add(1, Ordering::Relaxed)) {
                    request = request.header(name, value);
                }
                let request = request.body(Empty::<Bytes>::new()).unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status().as_u16();
                response.into_body().collect().await.unwrap();
                let counter = match status {
                    200 => &counts.ok,
                    429 => &counts.limited,
                    _ => &counts.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (
        counts.ok.load(Ordering::Relaxed),
        counts.limited.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed),
    )
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Keeps the baseline (the first) and the variants whose name contains `LOAD_ONLY`, or one
/// of its `|`-separated parts.
pub fn only<T>(variants: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    variants
        .into_iter()
        .enumerate()
        .filter(|(i, v)| *i == 0 || only.split('|').any(|part| name(v).contains(part)))
        .map(|(_, v)| v)
        .collect()
}

/// A runtime of two workers: the servers get one of their own, as they would in
/// production, and the load clients another.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// How long, how often and how wide a harness loads: `LOAD_SECS` per run (default 2),
/// `LOAD_ROUNDS` (default `rounds`), `LOAD_CONNS` keep-alive connections (default 32).
pub struct Settings {
    pub secs: u64,
    pub rounds: usize,
    pub conns: u64,
    pub run: Duration,
}

impl Settings {
    pub fn from_env(rounds: u64) -> Self {
        let secs = env("LOAD_SECS", 2);
        Self {
            secs,
            rounds: env("LOAD_ROUNDS", rounds) as usize,
            conns: env("LOAD_CONNS", 32),
            run: Duration::from_secs(secs),
        }
    }
}

/// Throughputs of paired runs: per variant, its req/s and its ratio to the mean of the two
/// baseline runs around it, one of each per round.
pub struct Paired {
    rps: Vec<Vec<f64>>,
    ratios: Vec<Vec<f64>>,
}

impl Paired {
    /// Runs `rounds` rounds of: the baseline, then each variant `1..variants` between two
    /// baseline runs. `baseline` and `variant(i)` each run once and return req/s, so slow
    /// drifts of the machine cancel out in the ratios.
    pub fn run(
        rounds: usize,
        variants: usize,
        mut baseline: impl FnMut() -> f64,
        mut variant: impl FnMut(usize) -> f64,
    ) -> Self {
        let mut rps = vec![Vec::new(); variants];
        let mut ratios = vec![Vec::new(); variants];
        for round in 0..rounds {
            let mut before = baseline();
            rps[0].push(before);
            ratios[0].push(1.0);
            for i in 1..variants {
                let this = variant(i);
                let after = baseline();
                rps[i].push(this);
                ratios[i].push(this / ((before + after) / 2.0));
                rps[0].push(after);
                before = after;
            }
            eprintln!("round {}/{rounds} done", round + 1);
        }
        Self { rps, ratios }
    }

    /// Variant `i`'s median req/s, median ratio, and lowest and highest ratio.
    pub fn summary(&self, i: usize) -> (f64, f64, f64, f64) {
        let r = &self.ratios[i];
        let (lo, hi) = r
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        (median(self.rps[i].clone()), median(r.clone()), lo, hi)
    }
}

/// Prints the report table under a line saying how it was measured, and writes both to
/// `path`.
pub fn publish(path: &str, rounds: usize, secs: u64, conns: u64, what: &str, table: &str) {
    let header = format!(
        "{rounds} rounds × {secs} s per variant, {conns} keep-alive connections, {what}client and server in one process (2 worker threads each) on {} cores\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("\n{header}{table}");
    // Relative to the workspace (a bench runs in its package's directory).
    let path = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::write(path, format!("{header}{table}"));
}

/// CPU seconds this process (client and server) has used so far, user and system, from
/// `/proc/self/stat` (Linux; 0 elsewhere). Ticks are 1/100 s (USER_HZ), a resolution of
/// 0.25 % of a 2 s run on 2 cores.
#[allow(dead_code)] // not every harness reports it
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at field 3 (`state`);
    // utime and stime are fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) as f64 / 100.0
}

/// Every command Redis ran so far (`INFO commandstats`, the `INFO` calls left out; commands
/// run inside scripts count too).
#[allow(dead_code)] // not every harness talks to Redis
pub fn redis_commands(server: &parapet_testkit::RedisServer) -> u64 {
    server
        .command(&["INFO", "commandstats"])
        .lines()
        .filter(|line| !line.starts_with("cmdstat_info:"))
        .filter_map(|line| {
            line.split_once(":calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}
