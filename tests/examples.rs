//! The examples do what their docs say: 100 quick requests get 200 and the 101st gets 429,
//! on one instance in memory, and spread over two instances that share one Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly

#[path = "../examples/ratelimit.rs"]
mod axum_example;
#[path = "../examples/hyper_ratelimit.rs"]
mod hyper_example;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use parapet_testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request on a fresh connection; returns the status and the head.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    get_with(addr, path, &[]).await
}

/// A request with extra header lines (raw bytes: a client may send anything).
async fn get_with(addr: SocketAddr, path: &str, headers: &[&[u8]]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n").into_bytes();
    for header in headers {
        request.extend_from_slice(header);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

async fn axum_instance(redis_url: Option<&str>) -> SocketAddr {
    let config = axum_example::Config {
        redis_url: redis_url.map(str::to_owned),
        ..Default::default()
    };
    axum_instance_with(&config).await
}

async fn axum_instance_with(config: &axum_example::Config) -> SocketAddr {
    let app = axum_example::app(config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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

async fn hyper_instance(redis_url: Option<&str>) -> SocketAddr {
    let layer = hyper_example::layer(redis_url).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hyper_example::serve(listener, layer));
    addr
}

/// GCRA at 100 a minute gives back one request every 600 ms: requests spread over
/// `elapsed` may be admitted beyond the burst of 100 by that many, and no more. (A loaded
/// machine can take longer than 600 ms for 100 requests; the bound follows the clock.)
fn gcra_admits_at_most(elapsed: Duration) -> usize {
    100 + (elapsed.as_millis() / 600) as usize
}

/// Sends requests until one is refused (at most 400); returns how many were admitted
/// (each a 200, or `ok`), the refusal's head, and how long since the first was sent.
async fn until_refused(
    mut send: impl AsyncFnMut(usize) -> (u16, String),
    ok: u16,
) -> (usize, String, Duration) {
    let started = Instant::now();
    for i in 0..400 {
        let (status, head) = send(i).await;
        if status == 429 {
            return (i, head, started.elapsed());
        }
        assert_eq!(status, ok, "request {i}: {head}");
    }
    panic!("400 requests and no refusal");
}

/// 100 requests round-robin over `instances` get 200, the next 429 with Retry-After (or
/// as many more as GCRA refilled while they ran). Returns when the refusal came back.
async fn hundred_then_429(instances: &[SocketAddr]) -> Instant {
    let (admitted, head, elapsed) = until_refused(
        async |i| get(instances[i % instances.len()], "/api/products").await,
        200,
    )
    .await;
    let refused_at = Instant::now();
    assert!(
        (100..=gcra_admits_at_most(elapsed)).contains(&admitted),
        "{admitted} admitted in {elapsed:?}"
    );
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(head.contains("\"minute\";r=0"), "{head}");
    refused_at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_in_memory() {
    let addr = axum_instance(None).await;
    hundred_then_429(&[addr]).await;
    // /health sits outside route_layer.
    assert_eq!(get(addr, "/health").await.0, 200);
}

/// `ALGORITHM` picks how the 100 per minute are counted: each admits 100 at once, and
/// the 101st is told when to retry as that algorithm says: GCRA when one request has
/// refilled (1 s), a sliding window when the oldest of the 100 leaves (about 60 s), a
/// fixed window at the minute's end. An unknown name fails at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_algorithms() {
    for (algorithm, retry) in [("gcra", 1..=1), ("sliding", 59..=60), ("fixed", 1..=60)] {
        let config = axum_example::Config {
            algorithm: Some(algorithm.to_owned()),
            ..Default::default()
        };
        let addr = axum_instance_with(&config).await;
        let minute = || SystemTime::UNIX_EPOCH.elapsed().unwrap().as_secs() / 60;
        let first_minute = minute();
        let (admitted, head, elapsed) =
            until_refused(async |_| get(addr, "/api/products").await, 200).await;
        // GCRA refills as it goes; a sliding window frees nothing within a minute; a fixed
        // window starts afresh at the minute's turn.
        let most = match algorithm {
            "gcra" => gcra_admits_at_most(elapsed),
            "fixed" if minute() != first_minute => 200,
            _ => 100,
        };
        assert!(
            (100..=most).contains(&admitted),
            "{algorithm}: {admitted} admitted in {elapsed:?}"
        );
        let after: u64 = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("retry-after: ")
                    .map(|v| v.trim().to_owned())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{algorithm}: {head}"));
        assert!(retry.contains(&after), "{algorithm}: retry after {after}");
    }
    let config = axum_example::Config {
        algorithm: Some("leaky".to_owned()),
        ..Default::default()
    };
    let error = axum_example::app(&config).await.expect_err("refused");
    assert!(error.to_string().contains("ALGORITHM"), "{error}");
}

/// `LIMIT` sets the requests per minute (the 6th of 5 is refused); a value that is not
/// one fails at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_limit() {
    let config = axum_example::Config {
        limit: Some("5".to_owned()),
        ..Default::default()
    };
    let addr = axum_instance_with(&config).await;
    let (admitted, _, _) = until_refused(async |_| get(addr, "/api/products").await, 200).await;
    assert_eq!(admitted, 5);
    for bad in ["0", "-1", "ten", "10000001"] {
        let config = axum_example::Config {
            limit: Some(bad.to_owned()),
            ..Default::default()
        };
        let error = axum_example::app(&config).await.expect_err("refused");
        assert!(error.to_string().contains("LIMIT"), "{bad}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_two_instances_one_redis() {
    let redis = RedisServer::start();
    let a = axum_instance(Some(&redis.url())).await;
    let b = axum_instance(Some(&redis.url())).await;
    let refused_at = hundred_then_429(&[a, b]).await;
    let status = get(b, "/api/products").await.0;
    // (unless a cell was given back meanwhile: one every 600 ms)
    assert!(
        status == 429 || refused_at.elapsed() >= Duration::from_millis(600),
        "the other instance refuses too: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_example_in_memory_and_on_redis() {
    let addr = hyper_instance(None).await;
    hundred_then_429(&[addr]).await;
    assert_eq!(
        get(addr, "/elsewhere").await.0,
        404,
        "unlimited paths reach the handler"
    );

    let redis = RedisServer::start();
    let a = hyper_instance(Some(&redis.url())).await;
    let b = hyper_instance(Some(&redis.url())).await;
    hundred_then_429(&[a, b]).await;
}

/// The example behind a load balancer (`TRUSTED_PROXIES=127.0.0.0/8`, the test client on
/// loopback playing the balancer that appends the client's address): whatever a client
/// forges on the left of the chain, it gets its own quota and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_example_behind_a_proxy_cannot_be_spoofed() {
    for header in ["x-forwarded-for", "forwarded"] {
        let config = axum_example::Config {
            trusted_proxies: vec!["127.0.0.0/8".into()],
            forwarded_header: Some(header.into()),
            ..Default::default()
        };
        let addr = axum_instance_with(&config).await;
        let real = "203.0.113.7";
        // What the client writes, then what the balancer appends.
        let forged: [&[u8]; 5] = [
            b"198.51.100.1",
            b"for=198.51.100.1;x=\"",
            b"\xff\xfe 198.51.100.2",
            b"unknown, \"",
            b"10.0.0.1, 10.0.0.2, 10.0.0.3",
        ];
        let line = |prefix: &[u8]| -> Vec<u8> {
            let mut line = format!("{header}: ").into_bytes();
            line.extend_from_slice(prefix);
            if header == "forwarded" {
                line.extend_from_slice(format!(", for={real}").as_bytes());
            } else {
                line.extend_from_slice(format!(", {real}").as_bytes());
            }
            line
        };
        let started = Instant::now();
        let mut admitted = 0;
        for i in 0..120 {
            let prefix = forged[i % forged.len()];
            let (status, head) = get_with(addr, "/api/products", &[&line(prefix)]).await;
            assert!(status == 200 || status == 429, "request {i}: {head}");
            admitted += usize::from(status == 200);
        }
        let elapsed = started.elapsed();
        assert!(
            (100..=gcra_admits_at_most(elapsed)).contains(&admitted),
            "{header}: forged prefixes shared the real client's quota: {admitted} admitted in {elapsed:?}"
        );
        // An honest chain of another client is keyed by that client.
        let honest = if header == "forwarded" {
            b"forwarded: for=198.51.100.9".to_vec()
        } else {
            b"x-forwarded-for: 198.51.100.9".to_vec()
        };
        assert_eq!(
            get_with(addr, "/api/products", &[&honest]).await.0,
            200,
            "{header}"
        );
    }
}

#[tokio::test]
async fn axum_example_says_when_redis_is_unreachable() {
    let url = {
        let redis = RedisServer::start();
        redis.url()
    };
    let config = axum_example::Config {
        redis_url: Some(url),
        ..Default::default()
    };
    let err = axum_example::app(&config).await.unwrap_err().to_string();
    assert!(
        err.starts_with("cannot reach Redis at redis://127.0.0.1:"),
        "{err}"
    );
}

/// What the README says counts against the quota under `route_layer`: unknown paths (404)
/// are not charged; a wrong method on a known path (405) is, because the path matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_route_layer_404_is_free_and_405_is_charged() {
    let addr = axum_instance(None).await;
    for _ in 0..150 {
        assert_eq!(get(addr, "/nowhere").await.0, 404);
    }
    hundred_then_429(&[addr]).await;

    let addr = axum_instance(None).await;
    let post = async |_| {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"POST /api/products HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        (response[9..12].parse().unwrap(), response)
    };
    let (charged, _, elapsed) = until_refused(post, 405).await;
    assert!(
        (100..=gcra_admits_at_most(elapsed)).contains(&charged),
        "{charged} charged 405s in {elapsed:?}"
    );
    let refused_at = Instant::now();
    let status = get(addr, "/api/products").await.0;
    assert!(status == 429 || refused_at.elapsed() >= Duration::from_millis(600));
}
