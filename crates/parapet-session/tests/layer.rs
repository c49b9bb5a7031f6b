//! The layer through an axum app, on every store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, Client, Counting, app, layer, store};
use parapet_session::{OverLimit, SessionStore};

/// The store under a counting wrapper, and a client of an app on it.
async fn counted(backend: Backend) -> (Arc<Counting>, Client) {
    let counting = Counting::new(store(backend).await);
    let store: Arc<dyn SessionStore> = counting.clone();
    (counting, Client::new(app(layer(store, |b| b))))
}

async fn untouched_requests_do_no_store_io_and_set_no_cookie(backend: Backend) {
    let (counting, client) = counted(backend).await;
    let reply = client.send("GET", "/untouched", "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.set_cookie(), None);
    assert!(reply.headers.get("vary").is_none());
    // Even with a session cookie.
    client.send("POST", "/put/a", "\"1\"").await;
    counting.take();
    let reply = client.send("GET", "/untouched", "").await;
    assert_eq!((reply.status, reply.set_cookie()), (StatusCode::OK, None));
    assert!(counting.take().is_empty());
}

async fn a_read_is_one_round_trip_and_the_writes_of_a_request_one_more(backend: Backend) {
    let (counting, client) = counted(backend).await;
    assert_eq!(client.send("POST", "/put/a", "x").await.status, 200);
    assert_eq!(counting.take(), ["create"], "a new session: one create");
    assert_eq!(client.send("GET", "/get/a", "").await.body, "\"x\"");
    assert_eq!(counting.take(), ["load"]);
    assert_eq!(client.send("POST", "/put/b", "y").await.status, 200);
    assert_eq!(
        counting.take(),
        ["save"],
        "a write without a read: one call"
    );
    assert_eq!(client.send("POST", "/visit", "").await.body, "1");
    assert_eq!(counting.take(), ["load", "incr"]);
    assert_eq!(client.send("POST", "/login/ann", "").await.status, 200);
    assert_eq!(counting.take(), ["load", "create", "delete"]);
}

async fn a_hundred_concurrent_writes_of_different_fields_all_stay(backend: Backend) {
    let (_, client) = counted(backend).await;
    client.send("POST", "/login/bea", "").await;
    let writes: Vec<_> = (0..100)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .send("POST", &format!("/put/item-{i}"), "1")
                    .await
                    .status
            })
        })
        .collect();
    for w in writes {
        assert_eq!(w.await.unwrap(), 200);
    }
    let keys: Vec<String> =
        serde_json::from_str(&client.send("GET", "/keys", "").await.body).unwrap();
    assert_eq!(keys.iter().filter(|k| k.starts_with("item-")).count(), 100);
}

async fn fifty_concurrent_increments_count_fifty(backend: Backend) {
    let (_, client) = counted(backend).await;
    client.send("POST", "/put/a", "1").await;
    let visits: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send("POST", "/visit", "").await })
        })
        .collect();
    let mut seen = Vec::new();
    for v in visits {
        let reply = v.await.unwrap();
        assert_eq!(reply.status, 200);
        seen.push(reply.body.parse::<i64>().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>(), "every count seen once");
    assert_eq!(client.send("POST", "/visit", "").await.body, "51");
}

async fn login_issues_a_new_id_and_the_old_one_is_dead(backend: Backend) {
    let (_, client) = counted(backend).await;
    client.send("POST", "/put/cart", "socks").await;
    let before = client.cookie().unwrap();
    // An attacker planted or read this id before login.
    let attacker = client.same_cookie(client.app.clone());
    assert_eq!(client.send("POST", "/login/cyd", "").await.status, 200);
    let after = client.cookie().unwrap();
    assert_ne!(before, after);
    assert_eq!(client.send("GET", "/me", "").await.body, "\"cyd\"");
    assert_eq!(
        client.send("GET", "/get/cart", "").await.body,
        "\"socks\"",
        "the cart carried over"
    );
    let reply = attacker.send("GET", "/me", "").await;
    assert_eq!(reply.status, 401, "the pre-login id carries no login");
    assert_eq!(attacker.send("GET", "/get/cart", "").await.body, "null");
    // Logging in as someone else on the same browser carries nothing over.
    client.send("POST", "/login/dan", "").await;
    assert_eq!(client.send("GET", "/get/cart", "").await.body, "null");
}

async fn rotate_and_logout_kill_the_old_id_at_once(backend: Backend) {
    let (_, client) = counted(backend).await;
    client.send("POST", "/login/eve", "").await;
    let old = client.same_cookie(client.app.clone());
    assert_eq!(client.send("POST", "/rotate", "").await.status, 200);
    assert_ne!(client.cookie(), old.cookie());
    assert_eq!(old.send("GET", "/me", "").await.status, 401);
    assert_eq!(client.send("GET", "/me", "").await.body, "\"eve\"");
    let kept = client.same_cookie(client.app.clone());
    let reply = client.send("POST", "/logout", "").await;
    assert!(
        reply.set_cookie().unwrap().contains("Max-Age=0"),
        "the cookie is removed"
    );
    assert_eq!(client.cookie(), None);
    // A copy of the id kept from before the logout is dead in the store.
    assert_eq!(kept.send("GET", "/me", "").await.status, 401);
    assert_eq!(kept.send("GET", "/get/a", "").await.body, "null");
}

async fn periodic_rotation_keeps_requests_in_flight_working(backend: Backend) {
    let clock = parapet_core::ManualClock::new();
    let store = common::store_with(backend, &clock, &common::prefix()).await;
    let build = |b: parapet_session::SessionLayerBuilder| {
        b.rotate_every(Duration::from_secs(2))
            .rotation_grace(Duration::from_secs(1))
    };
    let client = Client::new(app(layer(store, build)));
    client.send("POST", "/login/fay", "").await;
    let old = client.cookie();
    common::advance(backend, &clock, Duration::from_millis(2100)).await;
    // 30 concurrent requests all carry the old id; the first to finish rotates it.
    let tabs: Vec<_> = (0..30)
        .map(|i| {
            let tab = client.same_cookie(client.app.clone());
            tokio::spawn(async move {
                let me = tab.send("GET", "/me", "").await;
                let put = tab.send("POST", &format!("/put/tab-{i}"), "1").await;
                (me.status, me.body, put.status)
            })
        })
        .collect();
    for tab in tabs {
        let (status, body, put) = tab.await.unwrap();
        assert_eq!(
            (status, body.as_str(), put),
            (StatusCode::OK, "\"fay\"", StatusCode::OK)
        );
    }
    let fresh = client.send("GET", "/me", "").await;
    assert_eq!(fresh.status, 200);
    let latest = client.same_cookie(client.app.clone());
    let sessions = latest.send("GET", "/sessions", "").await.body;
    let rows: Vec<(String, bool, Option<String>)> = serde_json::from_str(&sessions).unwrap();
    assert_eq!(
        rows.len(),
        1,
        "rotation never made a second session: {sessions}"
    );
    let keys: Vec<String> =
        serde_json::from_str(&latest.send("GET", "/keys", "").await.body).unwrap();
    assert_eq!(keys.len(), 30, "no write of an in-flight request was lost");
    client.set_cookie_value(old);
    common::advance(backend, &clock, Duration::from_millis(1100)).await;
    assert_eq!(
        client.send("GET", "/me", "").await.status,
        401,
        "after the grace window"
    );
}

async fn revoking_the_others_holds_on_every_instance(backend: Backend) {
    let shared = store(backend).await;
    let one = app(layer(Arc::clone(&shared), |b| b));
    let two = app(layer(shared, |b| b));
    let phone = Client::new(one.clone());
    let laptop = Client::new(two.clone());
    let tablet = Client::new(one.clone());
    for c in [&phone, &laptop, &tablet] {
        assert_eq!(c.send("POST", "/login/gus", "").await.status, 200);
    }
    let listed: Vec<(String, bool, Option<String>)> =
        serde_json::from_str(&laptop.send("GET", "/sessions", "").await.body).unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed.iter().filter(|r| r.1).count(),
        1,
        "one is marked current"
    );
    assert_eq!(listed[0].2.as_deref(), Some("test-agent"));
    assert_eq!(
        laptop.send("DELETE", "/sessions/others", "").await.body,
        "2"
    );
    assert_eq!(phone.send("GET", "/me", "").await.status, 401);
    assert_eq!(
        tablet
            .same_cookie(two.clone())
            .send("GET", "/me", "")
            .await
            .status,
        401
    );
    assert_eq!(
        laptop.same_cookie(one).send("GET", "/me", "").await.body,
        "\"gus\""
    );
}

async fn the_session_limit_refuses_or_evicts(backend: Backend) {
    let shared = store(backend).await;
    let strict = app(layer(Arc::clone(&shared), |b| {
        b.max_sessions(2, OverLimit::RejectNew)
    }));
    let clients: Vec<Client> = (0..3).map(|_| Client::new(strict.clone())).collect();
    assert_eq!(clients[0].send("POST", "/login/hal", "").await.status, 200);
    assert_eq!(clients[1].send("POST", "/login/hal", "").await.status, 200);
    let third = clients[2].send("POST", "/login/hal", "").await;
    assert_eq!(third.status, 409, "{}", third.body);
    assert!(third.body.contains("too many sessions"));
    // Logging in again on a device that is logged in replaces its session: not a third.
    assert_eq!(clients[1].send("POST", "/login/hal", "").await.status, 200);
    assert_eq!(clients[0].send("GET", "/me", "").await.status, 200);
    let lenient = app(layer(shared, |b| b.max_sessions(2, OverLimit::EvictOldest)));
    let fourth = Client::new(lenient);
    assert_eq!(fourth.send("POST", "/login/hal", "").await.status, 200);
    assert_eq!(
        clients[0].send("GET", "/me", "").await.status,
        401,
        "the oldest was logged out"
    );
    assert_eq!(clients[1].send("GET", "/me", "").await.status, 200);
    assert_eq!(fourth.send("GET", "/me", "").await.status, 200);
}

async fn bad_cookies_are_no_session_and_never_a_500(backend: Backend) {
    let (counting, client) = counted(backend).await;
    client.send("POST", "/put/a", "1").await;
    let good = client.cookie().unwrap();
    let value = good.split_once('=').unwrap().1.to_owned();
    let mut tampered = value.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let huge = "A".repeat(10_000);
    let many: String = (0..200).map(|i| format!("c{i}=v; ")).collect();
    let cases = [
        (format!("__Host-session={}", "garbage"), false),
        (format!("__Host-session={}", &value[..40]), false),
        (format!("__Host-session={value}="), false),
        (format!("__Host-session={huge}"), false),
        (format!("{many}__Host-session=%%%"), false),
        ("__Host-session".to_string(), false),
        (format!("__Host-session={tampered}"), true),
    ];
    counting.take();
    for (cookie, well_formed) in cases {
        let probe = Client::new(client.app.clone());
        probe.set_cookie_value(Some(cookie.clone()));
        let me = probe.send("GET", "/me", "").await;
        assert_eq!(me.status, 401, "{cookie:.60}");
        assert_eq!(
            me.set_cookie(),
            None,
            "{cookie:.60}: the client's cookie is left alone"
        );
        probe.set_cookie_value(Some(cookie.clone()));
        let get = probe.send("GET", "/get/a", "").await;
        assert_eq!(
            (get.status, get.body.as_str()),
            (StatusCode::OK, "null"),
            "{cookie:.60}"
        );
        let calls = counting.take();
        assert_eq!(calls.is_empty(), !well_formed, "{cookie:.60}: {calls:?}");
    }
    // Bytes that are not UTF-8 (obs-text) in the header.
    let request = axum::http::Request::builder()
        .uri("/me")
        .header(
            "cookie",
            axum::http::HeaderValue::from_bytes(b"__Host-session=\xff\xfe\x80").unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(client.raw(request).await.status, 401);
    assert!(counting.take().is_empty());
    // Many cookies with the real one among them still find it.
    let probe = Client::new(client.app.clone());
    probe.set_cookie_value(Some(format!("{many}__Host-session=junk; {good}")));
    assert_eq!(probe.send("GET", "/get/a", "").await.body, "\"1\"");
    // A byte that is not ASCII in another cookie (a sibling subdomain can set one) does
    // not hide the session, on the same line or another.
    for lines in [
        vec![format!("junk=\u{e9}; {good}")],
        vec!["junk=\u{e9}".to_owned(), good.clone()],
    ] {
        let mut request = axum::http::Request::builder().uri("/get/a");
        for line in &lines {
            request = request.header(
                "cookie",
                axum::http::HeaderValue::from_bytes(line.as_bytes()).unwrap(),
            );
        }
        let got = client
            .raw(request.body(axum::body::Body::empty()).unwrap())
            .await;
        assert_eq!(got.body, "\"1\"", "{lines:?}");
    }
    // A Unicode space before the name is no whitespace to the cookie reader: a cookie a
    // sibling subdomain can set (it lacks the `__Host-` prefix) is not the session.
    for space in ["\u{a0}", "\u{2000}", "\u{3000}", "\u{85}"] {
        let line = format!("{space}{good}");
        let request = axum::http::Request::builder()
            .uri("/get/a")
            .header(
                "cookie",
                axum::http::HeaderValue::from_bytes(line.as_bytes()).unwrap(),
            )
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(client.raw(request).await.body, "null", "{space:?}");
    }
}

async fn huge_values_get_413_and_the_session_is_kept(backend: Backend) {
    let (_, client) = counted(backend).await;
    client.send("POST", "/put/a", "small").await;
    let reply = client.send("POST", "/put/b", &"x".repeat(70_000)).await;
    assert_eq!(reply.status, 413);
    // Just under the per-value limit each, but over the session's total.
    for name in ["c", "d"] {
        let reply = client
            .send("POST", &format!("/put/{name}"), &"y".repeat(40_000))
            .await;
        if name == "d" {
            assert_eq!(reply.status, 413, "{}", reply.body);
        }
    }
    assert_eq!(client.send("GET", "/get/a", "").await.body, "\"small\"");
    let long_name = "n".repeat(500);
    assert_eq!(
        client
            .send("POST", &format!("/put/{long_name}"), "1")
            .await
            .status,
        413
    );
}

async fn cookies_are_secure_by_default(backend: Backend) {
    let (_, client) = counted(backend).await;
    let reply = client.send("POST", "/put/a", "1").await;
    let cookie = reply.set_cookie().unwrap();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(cookie.starts_with("__Host-session="));
    assert_eq!(reply.headers["cache-control"], "private");
    let read = client.send("GET", "/get/a", "").await;
    assert_eq!(read.headers["vary"], "cookie");
    let host = app(layer(store(backend).await, |b| {
        b.host_prefix(false).cookie_name("id")
    }));
    let reply = Client::new(host).send("POST", "/put/a", "1").await;
    assert!(reply.set_cookie().unwrap().starts_with("id="));
}

async fn a_write_with_an_unknown_id_starts_a_new_session(backend: Backend) {
    let (_, client) = counted(backend).await;
    client.send("POST", "/put/a", "1").await;
    let stale = client.cookie().unwrap();
    client.send("POST", "/logout", "").await;
    // A tab that kept the ended id writes without reading first.
    client.set_cookie_value(Some(stale.clone()));
    let reply = client.send("POST", "/put/b", "2").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fresh = client.cookie().unwrap();
    assert_ne!(fresh, stale, "a new id");
    assert_eq!(client.send("GET", "/get/b", "").await.body, "\"2\"");
    assert_eq!(
        client.send("GET", "/get/a", "").await.body,
        "null",
        "nothing of the old one"
    );
    // A request that read its session, which then ended, is told so.
    client.send("POST", "/login/ned", "").await;
    assert_eq!(client.send("GET", "/me", "").await.status, 200);
}

async fn a_failed_request_writes_nothing(backend: Backend) {
    let (_, client) = counted(backend).await;
    client.send("POST", "/put/a", "1").await;
    assert_eq!(client.send("POST", "/fail", "").await.status, 500);
    assert_eq!(client.send("GET", "/get/lost", "").await.body, "null");
}

on_every_store!(
    untouched_requests_do_no_store_io_and_set_no_cookie,
    a_read_is_one_round_trip_and_the_writes_of_a_request_one_more,
    a_hundred_concurrent_writes_of_different_fields_all_stay,
    fifty_concurrent_increments_count_fifty,
    login_issues_a_new_id_and_the_old_one_is_dead,
    rotate_and_logout_kill_the_old_id_at_once,
    periodic_rotation_keeps_requests_in_flight_working,
    revoking_the_others_holds_on_every_instance,
    the_session_limit_refuses_or_evicts,
    bad_cookies_are_no_session_and_never_a_500,
    huge_values_get_413_and_the_session_is_kept,
    cookies_are_secure_by_default,
    a_failed_request_writes_nothing,
    a_write_with_an_unknown_id_starts_a_new_session,
);

/// A logged-in cookie carries its user's group: with a key secret (Redis) or a secret of
/// the process (memory), not a plain hash of the user id that anyone could check.
#[tokio::test]
async fn a_cookie_does_not_carry_a_plain_hash_of_its_user() {
    use base64::Engine as _;
    let keyed = parapet_session::RedisStore::new(common::handle(Backend::Redis).await)
        .unwrap()
        .key_secret(parapet_core::KeySecret::new("a key secret of this service").unwrap());
    let stores: [(&str, Arc<dyn SessionStore>); 2] = [
        ("memory", store(Backend::Memory).await),
        ("redis with a key secret", Arc::new(keyed)),
    ];
    let plain = parapet_core::HashTag::of(b"alice");
    for (name, store) in stores {
        let client = Client::new(app(layer(store, |b| b)));
        assert_eq!(client.send("POST", "/login/alice", "").await.status, 200);
        let cookie = client.cookie().unwrap();
        let value = cookie.split_once('=').unwrap().1;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .unwrap();
        assert_eq!(bytes.len(), 48, "{name}");
        assert_ne!(&bytes[32..], plain.as_bytes(), "{name}: the group is keyed");
        assert_eq!(client.send("GET", "/me", "").await.body, "\"alice\"");
    }
}

/// With a key secret, a dump of Redis names no user: the stored user id is sealed, and
/// still reads back through login, rotation and a fresh load.
#[tokio::test]
async fn with_a_key_secret_redis_holds_no_user_id_in_clear() {
    let prefix = common::prefix();
    let store = parapet_session::RedisStore::new(common::handle(Backend::Redis).await)
        .unwrap()
        .prefix(parapet_core::KeyPrefix::new(prefix.clone()).unwrap())
        .key_secret(parapet_core::KeySecret::new("a key secret of this service").unwrap());
    let client = Client::new(app(layer(Arc::new(store), |b| b)));
    assert_eq!(client.send("POST", "/login/alice.w", "").await.status, 200);
    assert_eq!(client.send("POST", "/rotate", "").await.status, 200);
    assert_eq!(client.send("GET", "/me", "").await.body, "\"alice.w\"");
    let server = parapet_testkit::RedisServer::shared();
    let keys = server.command(&["KEYS", &format!("{prefix}:*")]);
    let mut stored = 0;
    for key in keys.lines() {
        let dump = server.command(&["DUMP", key]);
        assert!(!dump.contains("alice"), "{key} names the user");
        if server.command(&["TYPE", key]) == "+hash" {
            stored += usize::from(server.command(&["HEXISTS", key, "m:user"]) == ":1");
        }
    }
    assert!(stored >= 1, "the session is there: {keys}");
}
