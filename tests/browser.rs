//! Debian's headless Chromium drives `examples/stack.rs` through `tests/browser/walk.mjs`
//! (Playwright's protocol client, no browser download): the cached catalog, an anonymous
//! cart, login with the cart kept and the id rotated, a 429, logout. `scripts/test`
//! installs `chromium` (apt-get) and the script's one npm package when they are missing.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // tests fail loudly

#[path = "../examples/stack.rs"]
mod stack;

use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_walks_the_stack() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists() || std::env::var_os("CHROMIUM").is_some(),
        "chromium is not installed: run scripts/test, which installs it (apt-get install chromium)"
    );
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run scripts/test, which installs it (npm ci in tests/browser)"
    );
    let config = stack::Config {
        jwt_secret: Some("a jwt secret for the browser test, long enough".into()),
        ..Default::default()
    };
    let app = stack::app(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(stack::serve(listener, app, std::future::pending()));
    // `localhost`: a secure context for the browser, so it keeps the `Secure` cookie.
    let base = format!("http://localhost:{port}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("walk.mjs"))
            .arg(base)
            .output()
            .expect("node runs (Node.js 18 or newer)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("browser walk: ok"),
        "{stdout}\n{stderr}"
    );
}
