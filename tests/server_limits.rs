//! The examples' HTTP server (`examples/support/server.rs`): slow or idle clients are
//! disconnected, connections past the limit wait, and shutdown lets requests in flight
//! finish.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

#[path = "../examples/support/server.rs"]
mod server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n";

/// The size of `/big`: more than the socket buffers between the server and a client with
/// a small receive buffer hold, so a client that reads nothing stalls the server's writes.
const BIG: usize = 16 << 20;

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        )
        .route("/big", get(|| async { vec![b'x'; BIG] }))
}

async fn start(limits: server::Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, app(), limits, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Reads one response (its head, then a body of its `content-length`) and returns the
/// head; an empty string when the server closed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = stream.read_exact(&mut body).await;
    head
}

/// True when the server closed the connection within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 256];
    let started = Instant::now();
    while started.elapsed() < within {
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
    false
}

fn limits(header_read_ms: u64, max_connections: usize) -> server::Limits {
    server::Limits {
        header_read: Duration::from_millis(header_read_ms),
        write_stall: Duration::from_secs(10),
        max_connections,
        max_connections_per_ip: max_connections,
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected() {
    let (addr, _stop) = start(limits(300, 16)).await;
    // A head sent slowly, never finished.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: te").await.unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(2)).await);
    // A connection that says nothing.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);
    // A keep-alive connection left idle after a request.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(REQUEST).await.unwrap();
    assert!(read_head(&mut idle).await.starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(2)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "not before the timeout"
    );
    // A prompt client is served on a connection it keeps using.
    let mut prompt = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    for round in 0..3 {
        prompt.write_all(REQUEST).await.unwrap();
        let head = read_head(&mut prompt).await;
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "round {round} at {:?}: {head:?}",
            opened.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_one_to_close() {
    let (addr, _stop) = start(limits(5_000, 2)).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    first.write_all(REQUEST).await.unwrap();
    assert!(read_head(&mut first).await.starts_with("HTTP/1.1 200"));
    // The third is accepted by the kernel but not served while two are open.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(REQUEST).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), read_head(&mut third)).await;
    assert!(waited.is_err(), "served past the limit");
    drop(first);
    let head = tokio::time::timeout(Duration::from_secs(2), read_head(&mut third))
        .await
        .expect("served once a connection closed");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let (addr, stop) = start(limits(5_000, 16)).await;
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let head = read_head(&mut busy).await;
    assert!(head.starts_with("HTTP/1.1 200"), "finished: {head}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connection after shutdown"
    );
}

#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    let mut limits = limits(5_000, 16);
    limits.max_connections_per_ip = 2;
    let (addr, _stop) = start(limits).await;
    let _first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(2)).await,
        "the third connection of one address is closed"
    );
    drop(_first);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    again.write_all(REQUEST).await.unwrap();
    assert!(read_head(&mut again).await.starts_with("HTTP/1.1 200"));
}

/// A connection to `addr` with a small receive buffer (the kernel's smallest above 16 KiB).
async fn small_window(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the server closes (or 10 s pass): the bytes read, and whether it closed.
async fn read_to_close(stream: &mut TcpStream, pause: Duration) -> (usize, bool) {
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            tokio::time::sleep(pause).await;
        }
    })
    .await
    .is_ok();
    (got, closed)
}

/// A client with a small receive window that has asked a server whose write stall timeout
/// is `write_stall` for `/big` (the server it keeps alive with the returned sender).
async fn asking_for_big(write_stall: Duration) -> (TcpStream, tokio::sync::oneshot::Sender<()>) {
    let (addr, stop) = start(server::Limits {
        write_stall,
        ..limits(10_000, 16)
    })
    .await;
    let mut client = small_window(addr).await;
    client
        .write_all(b"GET /big HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    (client, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected() {
    // Asks for 16 MiB and reads nothing for ten times the stall timeout.
    let (mut silent, _stop) = asking_for_big(Duration::from_millis(300)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // What the socket buffers held, then the end: the server gave up on the response.
    let (got, closed) = read_to_close(&mut silent, Duration::ZERO).await;
    assert!(closed, "the connection stayed open");
    assert!(got < BIG, "the whole response arrived: {got} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_slowly_gets_its_whole_response() {
    // 64 KiB at a time, a pause after each: about 2 s for the 16 MiB, never silent for 2 s.
    let (mut reader, _stop) = asking_for_big(Duration::from_secs(2)).await;
    let (all, closed) = read_to_close(&mut reader, Duration::from_millis(5)).await;
    assert!(closed, "the response did not end");
    assert!(all > BIG, "a reading client lost its response: {all} bytes");
}
