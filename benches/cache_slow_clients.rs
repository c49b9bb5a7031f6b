//! Memory under clients that ask for large cacheable answers and never read them: the
//! reproduction of round two's report (300 connections, each a different ~1 MB cacheable
//! answer, nobody reading; then the example grew from 118 to 384 MiB).
//!
//! An axum app in this process (the cache on its defaults, 64 MiB store, in front of a
//! handler that answers 1 MiB, `Cache-Control: public, max-age=600`, built fresh per
//! request), 300 connections that each send one `GET` of a path of their own and read
//! nothing; after 3 s, the process's RSS growth. Each case runs in a process of its own:
//! the default `max_in_flight_bytes` (32 MiB) and no bound (`usize::MAX`, what the cache did
//! before the bound).
//!
//! `cargo bench -p parapet-benches --bench cache_slow_clients` (env: `CLIENTS`, default
//! 300).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // the load helpers are for the other harnesses
mod harness;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use tokio::io::AsyncWriteExt;
use tower_parapet::cache::CacheLayer;

use harness::{env, runtime, serve};

async fn case(bound: Option<usize>, clients: usize) -> (f64, f64) {
    let mut builder = CacheLayer::builder();
    if let Some(bound) = bound {
        builder = builder.max_in_flight_bytes(bound);
    }
    let layer = builder.build().unwrap();
    let cache = layer.handle();
    let app = Router::new()
        .fallback(|| async {
            Response::builder()
                .header("cache-control", "public, max-age=600")
                .body(Body::from(vec![b'x'; 1 << 20]))
                .unwrap()
        })
        .layer(layer);
    let addr = serve(app).await;
    let before = harness::rss();
    let mut held = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /big/{i} HTTP/1.1\r\nHost: slow.example\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = harness::rss().saturating_sub(before) as f64 / f64::from(1 << 20);
    let in_flight = cache.in_flight_bytes() as f64 / f64::from(1 << 20);
    drop(held);
    (grown, in_flight)
}

fn main() {
    let clients = env("CLIENTS", 300) as usize;
    if let Ok(which) = std::env::var("SLOW_CASE") {
        let bound = (which == "unbounded").then_some(usize::MAX);
        let (grown, in_flight) = runtime().block_on(case(bound, clients));
        println!("{grown:.1} {in_flight:.1}");
        return;
    }
    let mut report = format!(
        "{clients} connections, each asking for its own 1 MiB cacheable answer, none reading\n\n\
         | max_in_flight_bytes | RSS growth after 3 s (MiB) | counted in flight (MiB) |\n|---|---:|---:|\n"
    );
    for (label, which) in [
        ("32 MiB (default)", "default"),
        ("none (usize::MAX)", "unbounded"),
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--bench")
            .env("SLOW_CASE", which)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = line.split_whitespace().collect();
        report.push_str(&format!("| {label} | {} | {} |\n", f[0], f[1]));
    }
    print!("{report}");
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/cache-slow-clients-report.md"
        ),
        &report,
    );
}
