//! Bytes of process memory (RSS, the allocator included) per session in the memory store,
//! for an empty-ish, a typical and a full session, each created through the session layer
//! as a handler creates it (`session.insert` of a JSON value, one request per session).
//!
//! `cargo bench -p parapet-benches --bench session_bytes` (env: `SESSIONS`, default
//! 100,000; full sessions are a tenth of it). The table goes to stdout and
//! `target/session-bytes-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails loudly

#[allow(dead_code)] // the load helpers are for the other harnesses
mod harness;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::Request;
use tower::ServiceExt;
use tower_parapet::session::{MemoryStore, Session, SessionLayer};

use harness::{env, runtime};

/// Bytes of RSS per session for `n` sessions, each holding `fields` fields of a JSON string
/// of `value_bytes` characters.
async fn per_session(n: usize, fields: usize, value_bytes: usize) -> (f64, usize) {
    // Room to spare: the table is sharded, and a full shard would evict.
    let store = MemoryStore::new().anonymous_capacity(2 * n);
    let layer = SessionLayer::builder()
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/fill",
            post(move |session: Session, body: String| async move {
                for i in 0..fields {
                    session.insert(&format!("f{i}"), &body).await.unwrap();
                }
                "ok"
            }),
        )
        .layer(layer);
    let value = "x".repeat(value_bytes);
    let before = harness::rss();
    for _ in 0..n {
        let request = Request::post("/fill")
            .body(Body::from(value.clone()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let after = harness::rss();
    assert_eq!(store.anonymous_len(), n, "every session is held");
    let per = after.saturating_sub(before) as f64 / n as f64;
    (per, value_bytes * fields)
}

/// The cases: (label, sessions, fields, value bytes). Each runs in a process of its own,
/// so that memory freed by one case and kept by the allocator does not hide the next one.
fn cases(n: usize) -> [(&'static str, usize, usize, usize); 5] {
    [
        ("one small field (a counter)", n, 1, 4),
        ("typical (a cart: 4 fields of 200 B)", n, 4, 200),
        ("full, 60 fields of 1 KB", n / 10, 60, 1_000),
        ("full, one field of 63 KiB", n / 10, 1, 63 * 1024),
        (
            "full, 900 fields of 1 B (the most fields the limit allows)",
            n / 10,
            900,
            1,
        ),
    ]
}

fn main() {
    let n = env("SESSIONS", 100_000) as usize;
    if let Ok(case) = std::env::var("SESSION_BYTES_CASE") {
        let (_, count, fields, value) = cases(n)[case.parse::<usize>().unwrap()];
        let (per, _) = runtime().block_on(per_session(count, fields, value));
        println!("{per:.0}");
        return;
    }
    let mut report = String::from(
        "| session | sessions | data bytes (JSON values) | RSS bytes per session |\n|---|---:|---:|---:|\n",
    );
    for (i, (label, count, fields, value)) in cases(n).into_iter().enumerate() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--bench")
            .env("SESSION_BYTES_CASE", i.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let per = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        report.push_str(&format!(
            "| {label} | {count} | {} | {per} |\n",
            fields * value
        ));
    }
    println!("\n{report}");
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/session-bytes-report.md"
        ),
        &report,
    );
}
