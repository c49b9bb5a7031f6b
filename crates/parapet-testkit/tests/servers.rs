//! The kit's own checks: real processes come up, die, come back and freeze on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::time::{Duration, Instant};

use parapet_testkit::{RedisCluster, RedisServer};

#[test]
fn standalone_kill_restart_pause() {
    let mut server = RedisServer::start();
    assert_eq!(server.command(&["SET", "k", "v"]), "+OK");
    assert_eq!(server.command(&["GET", "k"]), "v");

    server.kill();
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port())).is_err());

    server.restart();
    assert_eq!(
        server.command(&["GET", "k"]),
        "(nil)",
        "a restart starts empty"
    );

    server.pause();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    use std::io::{Read, Write};
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert!(
        stream.read(&mut buf).is_err(),
        "a paused server must not answer"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    server.resume();
    assert_eq!(server.command(&["PING"]), "+PONG");
}

#[test]
fn cluster_has_three_masters_covering_all_slots() {
    let cluster = RedisCluster::start();
    assert_eq!(cluster.urls().len(), 3);
    let info = cluster.nodes()[0].command(&["CLUSTER", "INFO"]);
    assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    assert!(info.contains("cluster_size:3"), "{info}");
}

#[test]
fn cpu_seconds_grow_with_work() {
    let server = RedisServer::start();
    let before = server.cpu_seconds();
    for i in 0..2_000 {
        server.command(&["SET", &format!("k{i}"), "v"]);
    }
    assert!(server.cpu_seconds() > before);
}

#[test]
fn command_calls_counts_commandstats() {
    let server = RedisServer::start();
    let before = server.command_calls("set");
    server.command(&["SET", "a", "1"]);
    server.command(&["SET", "b", "2"]);
    assert_eq!(server.command_calls("set"), before + 2);
}
