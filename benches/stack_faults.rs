//! Three instances of `examples/stack.rs` on one Redis under mixed load while that Redis is
//! paused, killed and restarted, and filled to `maxmemory`; every check together:
//!
//! - **admissions**: a client flooding `POST /cart/items/…` over the three instances is
//!   admitted at most as the documented `OnStoreError::Fallback` allows (the quota on
//!   Redis; up to instances × quota while Redis is away), and the figure is reported;
//! - **no cross-client data**: every cart holds only its owner's items, every `/api/me`
//!   names its own token's subject, the catalog never carries a `Set-Cookie`;
//! - **acknowledged writes kept**: every cart item answered 2xx is in the cart at the end
//!   (the main Redis runs with `appendfsync always`, as the README's Deploying asks of a
//!   Redis that must survive a restart);
//! - **revocations hold**: no token is accepted on any instance later than the staleness
//!   bound after its revocation (by logout or by an admin) was acknowledged;
//! - **deadlines**: every request is answered within 1 s (store deadlines: 50 ms a limit,
//!   100 ms a session call; the catalog's handler takes 200 ms on a miss), none hangs;
//! - **recovery**: after the last fault every instance's `/health` is 200 again, by itself.
//!
//! `cargo bench -p parapet-benches --bench stack_faults` (env: `FAULT_SECS`, the length of
//! the run, default 48). The report goes to stdout and `target/stack-faults-report.md`;
//! any failed check ends the run with a panic that says which.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // the load harnesses' helpers
mod harness;
#[allow(dead_code)] // its main and what only the binary calls
#[path = "../examples/stack.rs"]
mod stack;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parapet_testkit::RedisServer;
use serde_json::Value;

/// The longest a request may take: the store deadlines of one request (a limit, a session
/// read and write, a per-user limit), the catalog's 200 ms, and slack for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(1);
/// How long after an acknowledged revocation an instance may still accept the token: the
/// fan-out's delivery, or the replica's 500 ms currency bound after a lost subscription.
const STALENESS: Duration = Duration::from_secs(1);

type Http = Client<HttpConnector, Full<Bytes>>;

struct Reply {
    status: u16,
    set_cookie: Option<String>,
    /// The `RateLimit` field.
    ratelimit: Option<String>,
    body: Value,
}

/// What every client saw, by phase.
#[derive(Default)]
struct Log {
    /// (phase, status) → count; status 0 is a request that got no answer within 5 s.
    statuses: BTreeMap<(&'static str, u16), u64>,
    /// phase → latencies in µs.
    latencies: BTreeMap<&'static str, Vec<u64>>,
    failures: Vec<String>,
}

struct World {
    instances: Vec<SocketAddr>,
    http: Http,
    started: Instant,
    /// The phase now, set by the fault schedule.
    phase: Mutex<&'static str>,
    log: Mutex<Log>,
    /// Revoked tokens: the bearer value and when its revocation was acknowledged.
    revoked: Mutex<Vec<(String, Instant)>>,
    /// Tokens not revoked yet, by user: the admin's targets.
    live: Mutex<BTreeMap<String, String>>,
    stop: Mutex<bool>,
    /// The run's time unit: phases are whole units.
    unit: Duration,
    /// Admissions of the two flooders, by phase.
    admitted: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl World {
    fn fail(&self, what: String) {
        let mut log = self.log.lock().unwrap();
        if log.failures.len() < 50 {
            log.failures.push(what);
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.lock().unwrap()
    }

    async fn send(
        &self,
        instance: usize,
        client: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<Reply> {
        let addr = self.instances[instance % self.instances.len()];
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("x-forwarded-for", client);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::from(body.to_owned())).unwrap();
        let phase = *self.phase.lock().unwrap();
        let started = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(5), async {
            let response = self.http.request(request).await.ok()?;
            let status = response.status().as_u16();
            let set_cookie = response
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or_default().to_owned());
            let ratelimit = response
                .headers()
                .get("ratelimit")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = response.into_body().collect().await.ok()?.to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Some(Reply {
                status,
                set_cookie,
                ratelimit,
                body,
            })
        })
        .await
        .ok()
        .flatten();
        let took = started.elapsed();
        let mut log = self.log.lock().unwrap();
        let status = answered.as_ref().map_or(0, |r| r.status);
        *log.statuses.entry((phase, status)).or_default() += 1;
        log.latencies
            .entry(phase)
            .or_default()
            .push(took.as_micros() as u64);
        drop(log);
        if answered.is_none() || took > DEADLINE {
            self.fail(format!(
                "{method} {path} on instance {} took {took:?} ({phase}), status {status}",
                instance % self.instances.len()
            ));
        }
        answered
    }
}

/// Browses the catalog: the same list for everyone, never a cookie.
async fn browser(world: Arc<World>, n: usize) {
    let client = format!("198.51.100.{n}");
    let mut i = n;
    while !world.stopped() {
        if let Some(reply) = world.send(i, &client, "GET", "/products", &[], "").await
            && reply.status == 200
        {
            if reply.set_cookie.is_some() {
                world.fail("the catalog set a cookie".into());
            }
            if reply.body[0]["name"] != "parapet" {
                world.fail(format!("catalog body {}", reply.body));
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// Fills a cart anonymously, logs in (shopper `n` after `n + 1` units, so that logins fall
/// in every phase), browses the catalog with its cookie, and checks that the cart holds its
/// own items only. Returns the items acknowledged (2xx), the cookie and the user.
async fn shopper(world: Arc<World>, n: usize) -> (BTreeSet<String>, Option<String>, String) {
    let client = format!("198.51.101.{n}");
    let user = format!("shopper{n}");
    let mut cookie: Option<String> = None;
    let mut acknowledged = BTreeSet::new();
    let mut logged_in = false;
    let mut i = 0usize;
    while !world.stopped() {
        let instance = n + i;
        let jar: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
        // A step every 1.2 s keeps within the cart's 60 a minute per user, and an add
        // every third step within the 20-a-minute creation limit.
        if i.is_multiple_of(3) {
            let item = format!("s{n}-{i}");
            let path = format!("/cart/items/{item}");
            if let Some(reply) = world.send(instance, &client, "POST", &path, &jar, "").await {
                if let Some(set) = reply.set_cookie.filter(|c| !c.ends_with('=')) {
                    cookie = Some(set);
                }
                if (200..300).contains(&reply.status) {
                    acknowledged.insert(item);
                }
            }
        } else if !logged_in && world.started.elapsed() > world.unit * (n as u32 + 1) {
            if let Some(reply) = world
                .send(instance, &client, "POST", "/login", &jar, &user)
                .await
                && reply.status == 200
            {
                cookie = reply.set_cookie.or(cookie);
                logged_in = true;
            }
        } else if i % 3 == 1 {
            // The catalog, with a session cookie: still never a cookie back.
            if let Some(reply) = world
                .send(instance, &client, "GET", "/products", &jar, "")
                .await
                && reply.set_cookie.is_some()
            {
                world.fail(format!("shopper {n} got a cookie with the catalog"));
            }
        } else if let Some(reply) = world
            .send(instance, &client, "GET", "/cart", &jar, "")
            .await
            && reply.status == 200
        {
            check_cart(&world, n, &reply.body);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(1_200)).await;
    }
    (acknowledged, cookie, user)
}

fn check_cart(world: &World, n: usize, cart: &Value) {
    let prefix = format!("s{n}-");
    for item in cart["items"].as_array().into_iter().flatten() {
        let item = item.as_str().unwrap_or_default();
        if !item.starts_with(&prefix) {
            world.fail(format!("shopper {n} saw item {item}"));
        }
    }
    if let Some(user) = cart["user"].as_str()
        && user != format!("shopper{n}")
    {
        world.fail(format!("shopper {n} saw user {user}"));
    }
}

/// Logs in to the API, calls `/api/me` on every instance, and logs out now and then; its
/// revoked tokens go on being tried by [`revoked_prober`].
async fn api_user(world: Arc<World>, n: usize) {
    let client = format!("198.51.102.{n}");
    let mut i = n;
    let mut bearer: Option<String> = None;
    let user = format!("api{n}");
    let mut calls = 0u32;
    while !world.stopped() {
        i += 1;
        // 100 a minute: within the 120 a minute per user on /api.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let Some(token) = bearer.clone() else {
            let Some(reply) = world
                .send(i, &client, "POST", "/api/login", &[], &user)
                .await
            else {
                continue;
            };
            if reply.status == 200 {
                let token = format!("Bearer {}", reply.body["token"].as_str().unwrap());
                world
                    .live
                    .lock()
                    .unwrap()
                    .insert(user.clone(), token.clone());
                bearer = Some(token);
                calls = 0;
            }
            continue;
        };
        let auth = [("authorization", token.as_str())];
        calls += 1;
        if calls.is_multiple_of(15) {
            // Log out; acknowledged, the token must die everywhere.
            if world.live.lock().unwrap().remove(&user).is_none() {
                bearer = None; // the admin took it
                continue;
            }
            if let Some(reply) = world
                .send(i, &client, "POST", "/api/logout", &auth, "")
                .await
                && reply.status == 200
            {
                world.revoked.lock().unwrap().push((token, Instant::now()));
                bearer = None;
            } else {
                world.live.lock().unwrap().insert(user.clone(), token);
            }
            continue;
        }
        if let Some(reply) = world.send(i, &client, "GET", "/api/me", &auth, "").await {
            match reply.status {
                200 if reply.body["sub"] != user.as_str() => {
                    world.fail(format!("{user} got the claims of {}", reply.body["sub"]));
                }
                // The admin revoked this user: log in again.
                401 if !world.live.lock().unwrap().contains_key(&user) => bearer = None,
                _ => {}
            }
        }
    }
}

/// Revokes a live user's tokens every few seconds, as an admin.
async fn admin(world: Arc<World>) {
    let client = "198.51.103.1";
    let mut admin_token = None;
    let mut i = 0;
    while !world.stopped() {
        i += 1;
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        let Some(token) = admin_token.clone() else {
            if let Some(reply) = world
                .send(i, client, "POST", "/api/login", &[], "admin")
                .await
                && reply.status == 200
            {
                admin_token = Some(format!("Bearer {}", reply.body["token"].as_str().unwrap()));
            }
            continue;
        };
        let target = world.live.lock().unwrap().pop_first();
        let Some((user, victim)) = target else {
            continue;
        };
        let path = format!("/api/admin/users/{user}/revoke");
        let auth = [("authorization", token.as_str())];
        match world.send(i, client, "POST", &path, &auth, "").await {
            Some(reply) if reply.status == 200 => {
                world.revoked.lock().unwrap().push((victim, Instant::now()));
            }
            _ => {
                world.live.lock().unwrap().insert(user, victim);
            }
        }
    }
}

/// Tries every revoked token on every instance: a 200 later than the staleness bound after
/// the revocation is a failure. Returns the latest acceptance seen after a revocation.
async fn revoked_prober(world: Arc<World>) -> Duration {
    let mut latest = Duration::ZERO;
    let mut i = 0;
    while !world.stopped() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let revoked: Vec<(String, Instant)> = world.revoked.lock().unwrap().clone();
        // Eight a round, in turn, so that every revoked token is tried again and again.
        let start = if revoked.is_empty() {
            0
        } else {
            i % revoked.len()
        };
        for (token, at) in revoked
            .iter()
            .cycle()
            .skip(start)
            .take(8.min(revoked.len()))
        {
            for instance in 0..world.instances.len() {
                i += 1;
                // An address per request: the per-address limit must not hide an acceptance.
                let client = format!("198.51.{}.{}", 104 + i / 250 % 4, i % 250);
                let auth = [("authorization", token.as_str())];
                let Some(reply) = world
                    .send(instance, &client, "GET", "/api/me", &auth, "")
                    .await
                else {
                    continue;
                };
                // The per-user limit stands behind the guard: a 429 of it is an acceptance too.
                let past_guard = reply.status == 200
                    || reply
                        .ratelimit
                        .as_deref()
                        .is_some_and(|f| f.contains("\"user\""));
                if past_guard {
                    let late = at.elapsed();
                    latest = latest.max(late);
                    if late > STALENESS {
                        world.fail(format!(
                            "a token revoked {late:?} ago was accepted by instance {instance}"
                        ));
                    }
                }
            }
        }
    }
    latest
}

/// Floods `method path` over every instance, as `client` (or, with `client` empty, from
/// addresses of its own, one per request) with `headers`, counting admissions (2xx) by
/// phase under `name`.
async fn flood(
    world: Arc<World>,
    name: &'static str,
    (method, path, body): (&'static str, &'static str, &'static str),
    client: &'static str,
    headers: Vec<(&'static str, String)>,
) {
    let mut i = 0;
    while !world.stopped() {
        i += 1;
        let client = if client.is_empty() {
            format!("192.0.{}.{}", 2 + i / 250 % 8, i % 250)
        } else {
            client.to_owned()
        };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let phase = *world.phase.lock().unwrap();
        if let Some(reply) = world.send(i, &client, method, path, &headers, body).await {
            if (200..300).contains(&reply.status) {
                *world
                    .admitted
                    .lock()
                    .unwrap()
                    .entry((name, phase))
                    .or_default() += 1;
            }
            if path == "/cart" && reply.status == 200 {
                check_cart(&world, 99, &reply.body);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The most a GCRA limit of `rate` a minute (burst `rate`) admits over `elapsed` on one
/// limiter, and the documented worst case: that, plus each instance's own fallback limiter
/// in each outage (`OnStoreError::Fallback`; a fallback bucket refills between outages,
/// so each outage may start with a full burst).
fn bounds(rate: u64, elapsed: Duration, outages: &[Duration], instances: u64) -> (u64, u64) {
    let one = |t: &Duration| rate + (t.as_secs_f64() * rate as f64 / 60.0) as u64 + 1;
    let fallback: u64 = outages.iter().map(one).sum();
    (one(&elapsed), one(&elapsed) + instances * fallback)
}

fn percentile(values: &mut [u64], p: f64) -> u64 {
    values.sort_unstable();
    values[((values.len() - 1) as f64 * p) as usize]
}

fn main() {
    let secs = harness::env("FAULT_SECS", 48);
    let rt = harness::runtime();
    let mut redis = RedisServer::start_with(&[
        "--maxmemory-policy",
        "noeviction",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let config = stack::Config {
        redis_url: Some(redis.url()),
        cache_redis_url: None,
        trusted_proxies: vec!["127.0.0.0/8".into()],
        key_secret: Some("a key secret of sixteen bytes or more".into()),
        jwt_secret: Some("a jwt secret for the stack fault run".into()),
    };
    let world = rt.block_on(async {
        let mut instances = Vec::new();
        for _ in 0..3 {
            let app = stack::app(&config).await.unwrap();
            instances.push(harness::serve(app).await);
        }
        Arc::new(World {
            instances,
            http: Client::builder(TokioExecutor::new()).build_http(),
            started: Instant::now(),
            phase: Mutex::new("steady"),
            log: Mutex::default(),
            revoked: Mutex::default(),
            live: Mutex::default(),
            stop: Mutex::new(false),
            unit: Duration::from_secs(secs) / 12,
            admitted: Mutex::default(),
        })
    });
    // The cart hoarder: one logged-in user on every instance, from addresses of its own.
    let hoarder = rt.block_on(async {
        let login = world
            .send(0, "198.51.105.1", "POST", "/login", &[], "shopper99")
            .await;
        login
            .and_then(|r| r.set_cookie)
            .expect("the hoarder logs in")
    });
    let mut shoppers = Vec::new();
    let (prober, floods) = {
        let _guard = rt.enter();
        for n in 0..4 {
            tokio::spawn(browser(world.clone(), n));
        }
        for n in 0..8 {
            shoppers.push(tokio::spawn(shopper(world.clone(), n)));
        }
        for n in 0..6 {
            tokio::spawn(api_user(world.clone(), n));
        }
        tokio::spawn(admin(world.clone()));
        let floods = [
            tokio::spawn(flood(
                world.clone(),
                "tokens",
                ("POST", "/api/login", "flooder"),
                "203.0.113.9",
                Vec::new(),
            )),
            tokio::spawn(flood(
                world.clone(),
                "cart",
                ("GET", "/cart", ""),
                "",
                vec![("cookie", hoarder)],
            )),
        ];
        (tokio::spawn(revoked_prober(world.clone())), floods)
    };

    // The fault schedule, in this thread, on the run's clock.
    let unit = world.unit;
    let at = |k: u32, world: &World, phase: &'static str| {
        let when = world.started + unit * k;
        std::thread::sleep(when.saturating_duration_since(Instant::now()));
        *world.phase.lock().unwrap() = phase;
        eprintln!("{:>5.1} s: {phase}", world.started.elapsed().as_secs_f64());
    };
    at(2, &world, "paused");
    redis.pause();
    at(3, &world, "after pause");
    redis.resume();
    at(5, &world, "killed");
    redis.kill();
    at(6, &world, "after restart");
    redis.restart();
    at(8, &world, "full");
    let used = redis.command(&["INFO", "memory"]);
    let used: u64 = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    redis.command(&["CONFIG", "SET", "maxmemory", &(used / 2).to_string()]);
    at(9, &world, "after full");
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    at(12, &world, "end");
    *world.stop.lock().unwrap() = true;

    let report = rt.block_on(async {
        let latest_acceptance = prober.await.unwrap();
        for task in floods {
            task.await.unwrap();
        }
        // Redis away three times: paused, killed, full (limit writes refused), each with a
        // second for the breaker's probe and the reconnection.
        let elapsed = world.started.elapsed();
        let outages = [unit + Duration::from_secs(1); 3];
        let admissions = world.admitted.lock().unwrap().clone();
        let mut floods = String::new();
        for (name, what, rate) in [
            ("tokens", "`POST /api/login` from one address (20 a minute where tokens are made)", 20),
            ("cart", "`GET /cart` as one logged-in user from many addresses (60 a minute per user)", 60),
        ] {
            let by_phase: Vec<String> = admissions
                .iter()
                .filter(|((n, _), _)| *n == name)
                .map(|((_, phase), k)| format!("{phase} {k}"))
                .collect();
            let total: u64 = admissions
                .iter()
                .filter(|((n, _), _)| *n == name)
                .map(|(_, k)| k)
                .sum();
            let (one, bound) = bounds(rate, elapsed, &outages, 3);
            if total > bound {
                world.fail(format!("{name}: {total} admitted, bound {bound}"));
            }
            floods.push_str(&format!(
                "- {what}, over the 3 instances: **{total}** admitted ({}); one limiter's bound over \
                 the run {one}, the documented worst case with Redis away {bound}\n",
                by_phase.join(", ")
            ));
        }
        // Recovery: every instance healthy again without help.
        let recovery = Instant::now();
        for (i, addr) in world.instances.iter().enumerate() {
            loop {
                let healthy = world
                    .http
                    .get(format!("http://{addr}/health").parse().unwrap())
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if healthy {
                    break;
                }
                if recovery.elapsed() > Duration::from_secs(10) {
                    world.fail(format!("instance {i} not healthy 10 s after the run"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let recovered = recovery.elapsed();
        // Every acknowledged cart item is there.
        let (mut kept, mut missing) = (0, 0);
        for (n, task) in shoppers.into_iter().enumerate() {
            let (acknowledged, cookie, _) = task.await.unwrap();
            let jar: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
            let client = format!("198.51.101.{n}");
            let mut cart = None;
            for _ in 0..20 {
                match world.send(n, &client, "GET", "/cart", &jar, "").await {
                    Some(reply) if reply.status == 200 => {
                        cart = Some(reply);
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            let Some(cart) = cart else {
                world.fail(format!("shopper {n}: no cart 10 s after the run"));
                continue;
            };
            check_cart(&world, n, &cart.body);
            let held: BTreeSet<String> = cart.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            for item in &acknowledged {
                if held.contains(item) {
                    kept += 1;
                } else {
                    missing += 1;
                    world.fail(format!("shopper {n}: acknowledged item {item} is gone"));
                }
            }
        }
        let revocations = world.revoked.lock().unwrap().len();
        let mut log = world.log.lock().unwrap();
        let mut table = String::from(
            "| phase | requests | 2xx | 401 | 429 | 503 | other | no answer | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let phases = ["steady", "paused", "after pause", "killed", "after restart", "full", "after full"];
        for phase in phases {
            let count = |f: &dyn Fn(u16) -> bool| -> u64 {
                log.statuses
                    .iter()
                    .filter(|((p, s), _)| *p == phase && f(*s))
                    .map(|(_, n)| n)
                    .sum()
            };
            let total = count(&|_| true);
            let (ok, refused, limited, unavailable, none) = (
                count(&|s| (200..300).contains(&s)),
                count(&|s| s == 401),
                count(&|s| s == 429),
                count(&|s| s == 503),
                count(&|s| s == 0),
            );
            let latencies = log.latencies.entry(phase).or_default();
            let (p99, max) = if latencies.is_empty() {
                (0, 0)
            } else {
                (percentile(latencies, 0.99), percentile(latencies, 1.0))
            };
            table.push_str(&format!(
                "| {phase} | {total} | {ok} | {refused} | {limited} | {unavailable} | {} | {none} | {:.1} | {:.1} |\n",
                total - ok - refused - limited - unavailable - none,
                p99 as f64 / 1e3,
                max as f64 / 1e3,
            ));
        }
        let failures = std::mem::take(&mut log.failures);
        let summary = format!(
            "3 instances of examples/stack.rs on one Redis (noeviction, appendfsync always), {secs} s: \
             paused {p} s, killed and restarted after {p} s, full to maxmemory for {p} s.\n\n{table}\n\
             {floods}\
             - cart items acknowledged and present at the end: {kept} of {}\n\
             - revocations acknowledged: {revocations}; latest acceptance of a revoked token after its \
             acknowledgement: {} ms (bound {} ms)\n\
             - every instance healthy {} ms after the run\n\
             - failed checks: {}\n",
            kept + missing,
            latest_acceptance.as_millis(),
            STALENESS.as_millis(),
            recovered.as_millis(),
            failures.len(),
            p = unit.as_secs_f64(),
        );
        (summary, failures)
    });
    let (summary, failures) = report;
    println!("\n{summary}");
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/stack-faults-report.md"
        ),
        &summary,
    );
    assert!(
        failures.is_empty(),
        "failed checks:\n{}",
        failures.join("\n")
    );
}
