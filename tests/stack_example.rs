//! `examples/stack.rs` does what its docs say, over real TCP: in memory, and as two
//! instances on one Redis behind a (loopback) load balancer.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly

#[path = "../examples/stack.rs"]
mod stack;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parapet_testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The session cookie this reply sets (`name=value`), if any.
    fn cookie(&self) -> Option<String> {
        let set = self.header("set-cookie")?;
        let pair = set.split(';').next()?.to_owned();
        (!pair.ends_with('=')).then_some(pair)
    }
}

/// One HTTP/1.1 request on a fresh connection, as the client `client` behind the loopback
/// balancer (which appends it to `X-Forwarded-For`).
async fn http(
    addr: SocketAddr,
    client: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Forwarded-For: {client}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    // Bodies are short: de-chunk by dropping the size lines.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n")
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect::<String>()
    } else {
        body.to_owned()
    };
    Reply {
        status: head[9..12].parse().unwrap(),
        head: head.to_owned(),
        body,
    }
}

/// GCRA at `rate` per `period_secs` admits its burst (`rate`) at once and then one more
/// each period / rate: the most requests spread over the time since `started` can get.
fn admits_at_most(rate: usize, period_secs: u64, started: Instant) -> usize {
    let interval = Duration::from_secs(period_secs) / rate as u32;
    rate + (started.elapsed().as_micros() / interval.as_micros()) as usize
}

fn config(redis_url: Option<String>) -> stack::Config {
    stack::Config {
        redis_url,
        cache_redis_url: None,
        // The test client on loopback plays the load balancer.
        trusted_proxies: vec!["127.0.0.0/8".into()],
        key_secret: Some("a key secret of sixteen bytes or more".into()),
        jwt_secret: Some("a jwt secret for the stack example tests".into()),
    }
}

async fn instance(config: &stack::Config) -> SocketAddr {
    let app = stack::app(config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(stack::serve(listener, app, std::future::pending()));
    addr
}

fn json(reply: &Reply) -> serde_json::Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

async fn token(addr: SocketAddr, client: &str, user: &str) -> String {
    let reply = http(addr, client, "POST", "/api/login", &[], user).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    json(&reply)["token"].as_str().unwrap().to_owned()
}

/// The walkthrough of the README, on one instance in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_in_memory() {
    let addr = instance(&config(None)).await;

    // The catalog: a miss, then a hit that skips the 200 ms handler.
    let first = http(addr, "198.51.100.1", "GET", "/products", &[], "").await;
    assert_eq!(first.status, 200);
    assert!(
        first.header("cache-status").unwrap().contains("stored"),
        "{}",
        first.head
    );
    let second = http(addr, "198.51.100.2", "GET", "/products", &[], "").await;
    assert!(
        second.header("cache-status").unwrap().contains("hit"),
        "{}",
        second.head
    );
    assert_eq!(first.body, second.body);
    // The per-IP limit is told on every response.
    assert!(
        second.header("ratelimit").unwrap().contains("\"ip\";r="),
        "{}",
        second.head
    );

    // An anonymous cart, carried over by login, which rotates the session id.
    let shopper = "198.51.100.3";
    let added = http(addr, shopper, "POST", "/cart/items/42", &[], "").await;
    assert_eq!(added.status, 200, "{}", added.body);
    let anonymous = added.cookie().expect("a session cookie");
    let cookie = [("cookie", anonymous.as_str())];
    let cart = http(addr, shopper, "GET", "/cart", &cookie, "").await;
    assert_eq!(json(&cart)["items"], serde_json::json!(["42"]));
    let login = http(addr, shopper, "POST", "/login", &cookie, "alice").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let logged_in = login.cookie().expect("a new session id");
    assert_ne!(logged_in, anonymous, "login rotates the id");
    let cart = http(addr, shopper, "GET", "/cart", &[("cookie", &logged_in)], "").await;
    assert_eq!(json(&cart)["user"], "alice");
    assert_eq!(json(&cart)["items"], serde_json::json!(["42"]));
    let old = http(addr, shopper, "GET", "/cart", &cookie, "").await;
    assert_eq!(
        json(&old)["items"],
        serde_json::json!([]),
        "the old id is dead"
    );
    // The cart is nobody else's, and never cached.
    let other = http(addr, "198.51.100.4", "GET", "/cart", &[], "").await;
    assert_eq!(json(&other)["items"], serde_json::json!([]));
    assert!(
        !other
            .header("cache-status")
            .unwrap_or_default()
            .contains("hit")
    );

    // The API: a token, its claims, logout revokes it.
    let api = "198.51.100.5";
    let bob = token(addr, api, "bob").await;
    let bearer = format!("Bearer {bob}");
    let me = http(
        addr,
        api,
        "GET",
        "/api/me",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!((me.status, json(&me)["sub"].as_str()), (200, Some("bob")));
    let out = http(
        addr,
        api,
        "POST",
        "/api/logout",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let me = http(
        addr,
        api,
        "GET",
        "/api/me",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(me.status, 401);
    // An admin revokes every token of a user; anyone else gets 403 with the realm.
    let carol = token(addr, api, "carol").await;
    let carol = format!("Bearer {carol}");
    let admin = format!("Bearer {}", token(addr, api, "admin").await);
    let denied = http(
        addr,
        api,
        "POST",
        "/api/admin/users/carol/revoke",
        &[("authorization", &carol)],
        "",
    )
    .await;
    assert_eq!(denied.status, 403);
    assert!(
        denied
            .header("www-authenticate")
            .unwrap()
            .contains("realm=\"parapet-stack\"")
    );
    let revoked = http(
        addr,
        api,
        "POST",
        "/api/admin/users/carol/revoke",
        &[("authorization", &admin)],
        "",
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let me = http(
        addr,
        api,
        "GET",
        "/api/me",
        &[("authorization", &carol)],
        "",
    )
    .await;
    assert_eq!(me.status, 401);

    // 20 a minute on the routes that create a session or a token, per client address.
    let flooder = "203.0.113.66";
    let started = Instant::now();
    let mut refused = None;
    for i in 0..40 {
        let reply = http(addr, flooder, "POST", "/cart/items/1", &[], "").await;
        if reply.status == 429 {
            refused = Some((i, reply));
            break;
        }
        assert_eq!(reply.status, 200);
    }
    let (i, refused) = refused.expect("the flood was limited");
    assert!(
        (20..=admits_at_most(20, 60, started)).contains(&i),
        "{i} admitted"
    );
    assert!(refused.header("retry-after").is_some());
    assert!(
        refused
            .header("ratelimit")
            .unwrap()
            .contains("\"create\";r=0")
    );
    // Other clients still log in.
    let login = http(addr, "198.51.100.7", "POST", "/login", &[], "dave").await;
    assert_eq!(login.status, 200);

    // 120 a minute per user on /api, whatever address the user comes from.
    let erin = format!("Bearer {}", token(addr, api, "erin").await);
    let started = Instant::now();
    let mut admitted = 0;
    loop {
        let client = format!("192.0.2.{}", admitted % 200);
        let auth = [("authorization", erin.as_str())];
        let status = http(addr, &client, "GET", "/api/me", &auth, "")
            .await
            .status;
        if status == 429 {
            break;
        }
        assert_eq!(status, 200);
        admitted += 1;
        assert!(admitted < 400, "never limited");
    }
    assert!(
        (120..=admits_at_most(120, 60, started)).contains(&admitted),
        "{admitted} admitted"
    );

    // 60 a minute on the cart per logged-in user: two devices on two addresses share it,
    // while an anonymous client is held by its address alone.
    let mut devices = Vec::new();
    for client in ["198.51.100.11", "198.51.100.12"] {
        let login = http(addr, client, "POST", "/login", &[], "fay").await;
        assert_eq!(login.status, 200, "{}", login.body);
        devices.push((client, login.cookie().unwrap()));
    }
    let started = Instant::now();
    let mut admitted = 0;
    loop {
        let (client, cookie) = &devices[admitted % 2];
        let reply = http(addr, client, "GET", "/cart", &[("cookie", cookie)], "").await;
        if reply.status == 429 {
            assert!(
                reply
                    .header("ratelimit")
                    .unwrap()
                    .contains("\"shopper\";r=0"),
                "{}",
                reply.head
            );
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
        admitted += 1;
        assert!(admitted < 200, "never limited");
    }
    assert!(
        (60..=admits_at_most(60, 60, started)).contains(&admitted),
        "{admitted} admitted"
    );
    let anonymous = http(addr, "198.51.100.13", "GET", "/cart", &[], "").await;
    assert_eq!(anonymous.status, 200);

    // Metrics: parapet's and requests by status; health.
    let metrics = http(addr, "198.51.100.8", "GET", "/metrics", &[], "").await;
    assert_eq!(metrics.status, 200);
    for name in [
        "parapet_ratelimit_decisions_total",
        "parapet_cache_requests_total",
        "http_requests_total{status=\"429\"}",
    ] {
        assert!(metrics.body.contains(name), "{name} missing from /metrics");
    }
    let health = http(addr, "198.51.100.8", "GET", "/health", &[], "").await;
    assert_eq!(health.status, 200, "{}", health.body);
}

/// Two instances on one Redis: a cart, a revocation and a limit are shared; with Redis
/// gone, /health says so and recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis() {
    let mut redis = RedisServer::start();
    let config = config(Some(redis.url()));
    let (a, b) = (instance(&config).await, instance(&config).await);
    let client = "198.51.100.20";

    let added = http(a, client, "POST", "/cart/items/7", &[], "").await;
    let cookie = added.cookie().unwrap();
    let cart = http(b, client, "GET", "/cart", &[("cookie", &cookie)], "").await;
    assert_eq!(json(&cart)["items"], serde_json::json!(["7"]));

    let bearer = format!("Bearer {}", token(a, client, "frank").await);
    assert_eq!(
        http(
            b,
            client,
            "GET",
            "/api/me",
            &[("authorization", &bearer)],
            ""
        )
        .await
        .status,
        200
    );
    assert_eq!(
        http(
            a,
            client,
            "POST",
            "/api/logout",
            &[("authorization", &bearer)],
            ""
        )
        .await
        .status,
        200
    );
    // The other instance hears of it within its staleness bound.
    let started = Instant::now();
    loop {
        let status = http(
            b,
            client,
            "GET",
            "/api/me",
            &[("authorization", &bearer)],
            "",
        )
        .await
        .status;
        if status == 401 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The per-address creation limit is shared: 20 over both instances.
    let flooder = "203.0.113.77";
    let started = Instant::now();
    let mut admitted = 0;
    for i in 0..25 {
        let instance = if i % 2 == 0 { a } else { b };
        admitted += usize::from(
            http(instance, flooder, "POST", "/cart/items/1", &[], "")
                .await
                .status
                == 200,
        );
    }
    assert!(
        (20..=admits_at_most(20, 60, started)).contains(&admitted),
        "{admitted} admitted"
    );

    // The cart limit per logged-in user is shared too: 60 over both instances, from
    // addresses of every kind.
    let login = http(a, "198.51.100.21", "POST", "/login", &[], "hal").await;
    let cookie = login.cookie().unwrap();
    let started = Instant::now();
    let mut admitted = 0;
    loop {
        let instance = if admitted % 2 == 0 { a } else { b };
        let client = format!("192.0.2.{}", admitted % 200);
        let status = http(
            instance,
            &client,
            "GET",
            "/cart",
            &[("cookie", &cookie)],
            "",
        )
        .await
        .status;
        if status == 429 {
            break;
        }
        assert_eq!(status, 200);
        admitted += 1;
        assert!(admitted < 200, "never limited");
    }
    assert!(
        (60..=admits_at_most(60, 60, started)).contains(&admitted),
        "{admitted} admitted"
    );

    // Healthy once every subscription is up (within a few milliseconds of the start).
    let started = Instant::now();
    loop {
        let health = http(a, client, "GET", "/health", &[], "").await;
        if health.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            health.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.kill();
    let health = http(a, client, "GET", "/health", &[], "").await;
    assert_eq!(health.status, 503, "{}", health.body);
    redis.restart();
    let started = Instant::now();
    while http(a, client, "GET", "/health", &[], "").await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM (here: the shutdown future) lets a request in flight finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let app = stack::app(&config(None)).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(stack::serve(listener, app, async {
        let _ = stopped.await;
    }));
    // The catalog takes 200 ms: stop while it is being answered.
    let slow = tokio::spawn(http(addr, "198.51.100.30", "GET", "/products", &[], ""));
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    assert_eq!(slow.await.unwrap().status, 200);
    server.await.unwrap().unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

/// A bind error names the address; a bad PORT says so.
#[tokio::test]
async fn a_bind_error_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = stack::bind("127.0.0.1", port)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
}

/// Fills `server` with keys of its own, then lowers its `maxmemory` below what it holds:
/// full, it refuses every write from now on (filling to the brim alone leaves a few
/// hundred bytes that Redis's housekeeping frees and lets the next write take).
fn fill(server: &RedisServer) {
    let value = "x".repeat(64 * 1024);
    for i in 0..16 {
        server.command(&["SET", &format!("filler:{i}"), &value]);
    }
    assert_eq!(
        server.command(&["CONFIG", "SET", "maxmemory", "1024"]),
        "+OK"
    );
    let refused = server.command(&["SET", "probe", "x"]);
    assert!(refused.starts_with("-OOM"), "{refused}");
}

/// One Redis for what must not be lost (`noeviction`), one for the cache: the cache's
/// Redis full to `maxmemory` costs neither the limits, the sessions nor the revocations
/// anything, and its refused writes do not switch off the memory tier's hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cache_redis_costs_the_others_nothing() {
    let main = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let cache =
        RedisServer::start_with(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let mut config = config(Some(main.url()));
    config.cache_redis_url = Some(cache.url());
    let addr = instance(&config).await;
    fill(&cache);
    let client = "198.51.100.40";

    // The popular URL: its write to the cache's Redis is refused, and yet the following
    // requests are memory hits, not 200 ms trips to the handler.
    let first = http(addr, client, "GET", "/products", &[], "").await;
    assert_eq!(first.status, 200);
    let mut hits = 0;
    for _ in 0..20 {
        let reply = http(addr, client, "GET", "/products", &[], "").await;
        assert_eq!(reply.status, 200);
        hits += usize::from(reply.header("cache-status").unwrap().contains("hit"));
    }
    assert_eq!(hits, 20, "memory hits stopped with the cache's Redis full");
    let metrics = http(addr, client, "GET", "/metrics", &[], "").await;
    assert!(
        metrics.body.contains("kind=\"oom\""),
        "the refused write is counted: {}",
        metrics
            .body
            .lines()
            .filter(|l| l.contains("parapet_cache"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Sessions, revocations and limits live on the other Redis and work as before.
    let added = http(addr, client, "POST", "/cart/items/9", &[], "").await;
    assert_eq!(added.status, 200, "{}", added.body);
    let cookie = added.cookie().unwrap();
    let cart = http(addr, client, "GET", "/cart", &[("cookie", &cookie)], "").await;
    assert_eq!(json(&cart)["items"], serde_json::json!(["9"]));
    let bearer = format!("Bearer {}", token(addr, client, "gina").await);
    let out = http(
        addr,
        client,
        "POST",
        "/api/logout",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let me = http(
        addr,
        client,
        "GET",
        "/api/me",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(me.status, 401);
    let flooder = "203.0.113.88";
    let started = Instant::now();
    let mut admitted = 0;
    for _ in 0..25 {
        admitted += usize::from(
            http(addr, flooder, "POST", "/cart/items/2", &[], "")
                .await
                .status
                == 200,
        );
    }
    assert!(
        (20..=admits_at_most(20, 60, started)).contains(&admitted),
        "{admitted} admitted"
    );
}
