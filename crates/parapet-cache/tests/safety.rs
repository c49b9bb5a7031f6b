//! What must never happen: one client's response reaching another, a stampede on the
//! origin, memory past its bound, a panic or a 500 on garbage.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{Backend, Origin, cache, fetch, get, send, with_host};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use parapet_cache::{CacheLayer, MemoryStore};
use proptest::prelude::*;
use tower::{Layer, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_misses_make_one_origin_call() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "cold");
    origin.slow(Duration::from_millis(300));
    let (svc, layer, _) = cache(Backend::Memory, &origin, |b| b).await;
    let tasks: Vec<_> = (0..10_000)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { fetch(&svc, "http://a.example/cold").await })
        })
        .collect();
    let mut bodies = 0;
    for task in tasks {
        let got = task.await.unwrap();
        assert_eq!((got.status, &got.body[..]), (200, &b"cold"[..]));
        bodies += 1;
    }
    assert_eq!(bodies, 10_000);
    assert_eq!(origin.calls(), 1);
    let stats = layer.handle().stats();
    assert_eq!((stats.misses, stats.hits), (1, 9_999), "{stats:?}");
    assert!(
        stats.collapsed > 0,
        "some waited for the one call: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_never_receive_a_private_or_cookie_response() {
    for headers in [
        vec![("cache-control", "private, max-age=60")],
        vec![("cache-control", "public, max-age=60"), ("set-cookie", "")],
    ] {
        let origin = Origin::new();
        let n = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&n);
        let fixed: Vec<(String, String)> = headers
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        origin.respond_with(move |_| {
            let i = counter.fetch_add(1, Ordering::SeqCst);
            let mut headers = fixed.clone();
            for (name, value) in &mut headers {
                if name == "set-cookie" {
                    *value = format!("id={i}");
                }
            }
            common::response(200, &headers, Bytes::from(format!("user {i}")))
        });
        origin.slow(Duration::from_millis(100));
        let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move { fetch(&svc, "http://a.example/me").await })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for task in tasks {
            let got = task.await.unwrap();
            assert!(
                seen.insert(got.body.clone()),
                "{headers:?}: a body reached two clients"
            );
        }
        assert_eq!(origin.calls(), 100, "{headers:?}");
    }
}

/// The origin answers with the identity of the request it got, cacheable and varying on
/// `Accept-Language`: any response served to a request that does not carry that request's
/// identity came from another request's entry.
fn identity(req: &Request<Full<Bytes>>) -> Response<Full<Bytes>> {
    let lang = req
        .headers()
        .get("accept-language")
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .unwrap_or_default();
    // Like any server, no body for a HEAD.
    let body = if req.method() == http::Method::HEAD {
        String::new()
    } else {
        format!("{} {} {}", req.method(), req.uri(), lang)
    };
    common::response(
        200,
        &[
            ("cache-control".into(), "public, max-age=600".into()),
            ("vary".into(), "accept-language".into()),
        ],
        Bytes::from(body),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_request_is_served_another_requests_entry(
        requests in proptest::collection::vec(
            (0..2usize, 0..3usize, "/[ab]{0,2}", proptest::option::of("[ab=&]{0,4}"), 0..3usize),
            1..40,
        )
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let origin = Origin::new();
            origin.respond_with(identity);
            let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
            for (method, host, path, query, lang) in requests {
                let method = ["GET", "HEAD"][method];
                let host = ["a.example", "b.example", "a.example:8080"][host];
                let uri = match &query {
                    Some(q) => format!("http://{host}{path}?{q}"),
                    None => format!("http://{host}{path}"),
                };
                let mut request = with_host(Request::builder().method(method).uri(&uri), &uri);
                if lang > 0 {
                    request = request.header("accept-language", ["", "en", "fr"][lang]);
                }
                let got = send(&svc, request).await;
                prop_assert_eq!(got.status, 200);
                if method == "GET" {
                    let lang = ["", "en", "fr"][lang];
                    let normalised_uri: http::Uri = uri.parse().unwrap();
                    let expected = format!("GET {normalised_uri} {lang}");
                    prop_assert_eq!(String::from_utf8_lossy(&got.body), expected);
                } else {
                    prop_assert!(got.body.is_empty());
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn garbage_cache_headers_never_panic_or_500(
        response_cc in "[a-z=\\-,\" 0-9]{0,40}|max-age=-1|max-age=99999999999999999999|s-maxage=1.5",
        date in "[A-Za-z0-9 ,:]{0,30}|Sun, 06 Nov 1994 08:49:37 GMT",
        age in "[0-9a-z,-]{0,12}",
        vary in "[A-Za-z*, -]{0,60}",
        etag in "[W/\"a-z]{0,8}",
        request_cc in "[a-z=\\-, 0-9]{0,30}",
        inm in "[W/\"a-z*, ]{0,12}",
        ims in "[A-Za-z0-9 ,:]{0,30}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let origin = Origin::new();
            let mut headers = vec![
                ("cache-control", response_cc.as_str()),
                ("date", date.as_str()),
                ("expires", date.as_str()),
                ("last-modified", date.as_str()),
                ("age", age.as_str()),
                ("vary", vary.as_str()),
            ];
            if !etag.is_empty() {
                headers.push(("etag", etag.as_str()));
            }
            headers.retain(|(_, v)| http::HeaderValue::from_str(v).is_ok());
            origin.answer(200, &headers, "body");
            let (svc, _, clock) = cache(Backend::Memory, &origin, |b| b).await;
            for _ in 0..3 {
                let mut request = get("http://a.example/");
                for (name, value) in [("cache-control", &request_cc), ("if-none-match", &inm), ("if-modified-since", &ims)] {
                    if http::HeaderValue::from_str(value).is_ok() {
                        request = request.header(name, value.as_str());
                    }
                }
                let got = send(&svc, request).await;
                prop_assert!(got.status == 200 || got.status == 304 || got.status == 504, "{}", got.status);
                clock.advance(Duration::from_secs(30));
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_huge_vary_is_not_stored() {
    let origin = Origin::new();
    let many: Vec<String> = (0..100).map(|i| format!("x-h{i}")).collect();
    let vary = many.join(", ");
    origin.answer(
        200,
        &[("cache-control", "public, max-age=60"), ("vary", &vary)],
        "x",
    );
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    let got = fetch(&svc, "http://a.example/").await;
    assert!(got.cache_status().ends_with("detail=vary-too-large"));
}

/// A 64 KiB memory store in front of an origin answering 1,000 bytes, fresh 10 minutes.
async fn small_store() -> (Arc<MemoryStore>, common::Svc) {
    let store = Arc::new(MemoryStore::new(64 << 10));
    let origin = Origin::new();
    origin.answer(
        200,
        &[("cache-control", "public, max-age=600")],
        &"x".repeat(1000),
    );
    let (svc, _, _) = cache(Backend::Memory, &origin, {
        let store = Arc::clone(&store);
        move |b| b.store(store)
    })
    .await;
    (store, svc)
}

#[tokio::test]
async fn the_memory_bound_holds_however_many_keys() {
    let (store, svc) = small_store().await;
    for i in 0..1000 {
        fetch(&svc, &format!("http://a.example/{i}")).await;
        assert!(
            store.bytes() <= store.capacity(),
            "{} > {}",
            store.bytes(),
            store.capacity()
        );
    }
    assert!(store.evicted() > 0);
    assert!(
        fetch(&svc, "http://a.example/999").await.is_hit(),
        "recent entries stay"
    );
}

/// Eviction is by use: a scan of one-off URLs through a full store evicts one-off URLs,
/// not the entry clients keep asking for. (Before: nearest expiry first, which with one
/// lifetime for all is the oldest stored, the one in use.)
#[tokio::test]
async fn eviction_keeps_what_is_used() {
    let (store, svc) = small_store().await;
    for i in 0..300 {
        // The page in use, asked for between every few one-off URLs.
        if i % 10 == 0 {
            let hot = fetch(&svc, "http://a.example/hot").await;
            assert!(i == 0 || hot.is_hit(), "{i}: {}", hot.cache_status());
        }
        fetch(&svc, &format!("http://a.example/once/{i}")).await;
    }
    assert!(store.evicted() > 0, "the scan filled the store");
    assert!(fetch(&svc, "http://a.example/hot").await.is_hit());
    assert!(store.bytes() <= store.capacity());
}

/// A body of `left` bytes in 64 KiB chunks, made on the fly.
struct Endless {
    left: usize,
    chunk: Bytes,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len());
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

#[tokio::test]
async fn a_gigabyte_streams_through_in_a_few_mebibytes() {
    for cache_control in ["private", "public, max-age=60"] {
        let layer = CacheLayer::builder().build().unwrap();
        let svc = layer.layer(tower::service_fn(
            move |_req: Request<Full<Bytes>>| async move {
                let mut response = Response::new(Endless {
                    left: 1 << 30,
                    chunk: Bytes::from(vec![7u8; 64 << 10]),
                });
                response
                    .headers_mut()
                    .insert("cache-control", cache_control.parse().unwrap());
                Ok::<_, Infallible>(response)
            },
        ));
        let before = common::rss_bytes();
        let response = svc
            .oneshot(
                get("http://a.example/big")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let mut body = response.into_body();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            total += frame.unwrap().into_data().map(|d| d.len()).unwrap_or(0);
        }
        assert_eq!(total, 1 << 30);
        let grown = common::rss_bytes().saturating_sub(before);
        assert!(grown < 8 << 20, "{cache_control}: RSS grew {grown} bytes");
    }
}

/// The origin answers with the `Host` it received.
fn echo_host(origin: &Origin) {
    origin.respond_with(|req| {
        let host = req
            .headers()
            .get("host")
            .map(|h| h.to_str().unwrap().to_owned())
            .unwrap_or_default();
        common::response(
            200,
            &[("cache-control".into(), "public, max-age=60".into())],
            Bytes::from(host),
        )
    });
}

/// RFC 9112 §3.2: two `Host` fields, or an absolute-form target with another `Host`, are
/// answered 400 by the cache, before any key is taken or the origin is asked; an
/// absolute-form target without `Host` is given the target's (§3.2.2), so the origin is
/// asked for the host that was keyed.
#[tokio::test]
async fn a_host_that_is_doubled_or_disagrees_with_the_target_is_a_400() {
    let origin = Origin::new();
    echo_host(&origin);
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    let requests = [
        Request::get("http://victim.example/a").header("host", "evil.example"),
        Request::get("/a")
            .header("host", "victim.example")
            .header("host", "evil.example"),
    ];
    for request in requests {
        let refused = send(&svc, request).await;
        assert_eq!(refused.status, 400, "{}", refused.cache_status());
        assert!(refused.cache_status().ends_with("detail=bad-host"));
    }
    assert_eq!(origin.calls(), 0, "the origin was never asked");
    let via_forwarded = send(
        &svc,
        get("http://victim.example/a").header("forwarded", "host=evil.example"),
    )
    .await;
    assert!(
        via_forwarded
            .cache_status()
            .ends_with("detail=unkeyed-header")
    );
    let clean = send(&svc, get("http://victim.example/a")).await;
    assert_eq!(clean.body, "victim.example");
    assert!(!clean.is_hit(), "nothing was stored by the forged requests");
    // No Host: the origin hears the target's, and the entry is that host's.
    let hostless = send(&svc, Request::get("http://victim.example/b")).await;
    assert_eq!(hostless.body, "victim.example");
    assert!(fetch(&svc, "http://victim.example/b").await.is_hit());
}

/// A `Connection` option names a field a proxy then drops after the key was taken
/// (`Connection: host`, or a `Vary`'d field): such requests bypass, so no answer to
/// another request than the one keyed is ever stored.
#[tokio::test]
async fn a_connection_option_naming_a_field_bypasses() {
    let origin = Origin::new();
    echo_host(&origin);
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    for option in ["host", "origin", "accept", "Keep-Alive, accept-language"] {
        let got = send(
            &svc,
            get("http://victim.example/c").header("connection", option),
        )
        .await;
        assert!(
            got.cache_status().ends_with("detail=connection-option"),
            "{option}: {}",
            got.cache_status()
        );
    }
    assert!(!fetch(&svc, "http://victim.example/c").await.is_hit());
    // The usual options keep the cache.
    for option in ["keep-alive", "close", "Upgrade", "TE"] {
        let got = send(
            &svc,
            get("http://victim.example/d").header("connection", option),
        )
        .await;
        assert!(
            !got.cache_status().contains("bypass"),
            "{option}: {}",
            got.cache_status()
        );
    }
    assert!(fetch(&svc, "http://victim.example/d").await.is_hit());
}

/// A GET or HEAD with a body (read by some frameworks: `callback=evil`) bypasses; the
/// underscore spellings of fields (`X_Forwarded_Host`, which CGI-style frameworks read as
/// `X-Forwarded-Host`) bypass, as do `X-Forwarded-Ssl` and `Front-End-Https`.
#[tokio::test]
async fn fat_gets_underscore_spellings_and_more_forwarding_fields_bypass() {
    let origin = Origin::new();
    echo_host(&origin);
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    let body = with_host(Request::get("http://a.example/f"), "http://a.example/f")
        .header("content-length", "14");
    let request = body
        .body(Full::new(Bytes::from_static(b"callback=evil!")))
        .unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    let status = response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(status.ends_with("detail=request-body"), "{status}");
    let chunked = send(
        &svc,
        get("http://a.example/f").header("transfer-encoding", "chunked"),
    )
    .await;
    assert!(chunked.cache_status().ends_with("detail=request-body"));
    for (name, detail) in [
        ("x_forwarded_host", "underscore-field"),
        ("X_HTTP_Method_Override", "underscore-field"),
        ("accept_language", "underscore-field"),
        ("x-forwarded-ssl", "unkeyed-header"),
        ("front-end-https", "unkeyed-header"),
    ] {
        let got = send(&svc, get("http://a.example/f").header(name, "on")).await;
        assert!(
            got.cache_status().ends_with(&format!("detail={detail}")),
            "{name}: {}",
            got.cache_status()
        );
    }
    assert!(
        !fetch(&svc, "http://a.example/f").await.is_hit(),
        "nothing stored"
    );
}

async fn concurrently(
    svc: &common::Svc,
    n: usize,
    request: impl Fn() -> http::request::Builder,
) -> Vec<common::Got> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let svc = svc.clone();
            let request = request();
            tokio::spawn(async move { send(&svc, request).await })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidations_collapse_like_misses() {
    let origin = Origin::new();
    origin.answer(
        200,
        &[("cache-control", "public, max-age=1"), ("etag", "\"v\"")],
        "x",
    );
    let (svc, _, clock) = cache(Backend::Memory, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(5));
    origin.answer(
        304,
        &[("cache-control", "public, max-age=60"), ("etag", "\"v\"")],
        "",
    );
    origin.slow(Duration::from_millis(200));
    let got = concurrently(&svc, 50, || get("http://a.example/")).await;
    assert!(got.iter().all(|g| g.status == 200 && g.body == "x"));
    assert_eq!(origin.calls(), 2, "one revalidation for 50 stale requests");
    // Clients asking for validation collapse too.
    let got = concurrently(&svc, 50, || {
        get("http://a.example/").header("cache-control", "no-cache")
    })
    .await;
    assert!(got.iter().all(|g| g.body == "x"));
    assert_eq!(origin.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_store_do_not_lead_or_mark() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "max-age=60")], "x");
    origin.slow(Duration::from_millis(200));
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    // A HEAD and an Authorization request go first, alone; the GETs still collapse.
    let head = tokio::spawn({
        let svc = svc.clone();
        async move {
            send(
                &svc,
                with_host(
                    http::Request::head("http://a.example/"),
                    "http://a.example/",
                ),
            )
            .await
        }
    });
    let authed = tokio::spawn({
        let svc = svc.clone();
        async move {
            send(
                &svc,
                get("http://a.example/").header("authorization", "Bearer t"),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    concurrently(&svc, 50, || get("http://a.example/")).await;
    head.await.unwrap();
    authed.await.unwrap();
    assert_eq!(
        origin.calls(),
        3,
        "HEAD, the Authorization GET, and one GET for fifty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_another_variant_collapse_on_their_own_flight() {
    let origin = Origin::new();
    origin.respond_with(|req| {
        let ae = req
            .headers()
            .get("accept-encoding")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        common::response(
            200,
            &[
                ("cache-control".into(), "public, max-age=60".into()),
                ("vary".into(), "accept-encoding".into()),
            ],
            Bytes::from(ae),
        )
    });
    origin.slow(Duration::from_millis(200));
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    let first = tokio::spawn({
        let svc = svc.clone();
        async move { fetch(&svc, "http://a.example/").await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let got = concurrently(&svc, 50, || {
        get("http://a.example/").header("accept-encoding", "gzip, br")
    })
    .await;
    assert!(got.iter().all(|g| g.body == "gzip, br"));
    assert_eq!(first.await.unwrap().body, "");
    assert_eq!(origin.calls(), 2, "one call per variant");
}

#[tokio::test]
async fn only_2xx_answers_get_304_and_head_keeps_the_length() {
    let origin = Origin::new();
    origin.answer(
        404,
        &[
            ("cache-control", "public, max-age=60"),
            ("etag", "\"gone\""),
        ],
        "not here",
    );
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    fetch(&svc, "http://a.example/gone").await;
    let got = send(
        &svc,
        get("http://a.example/gone").header("if-none-match", "*"),
    )
    .await;
    assert_eq!(
        (got.status, &got.body[..]),
        (404, &b"not here"[..]),
        "RFC 9110 §13.2.1"
    );

    let plain = Origin::new();
    plain.respond_with(|_| {
        let mut r = http::Response::new(http_body_util::Full::new(Bytes::from_static(b"12345")));
        r.headers_mut()
            .insert("cache-control", "public, max-age=60".parse().unwrap());
        r
    });
    let (svc, _, _) = cache(Backend::Memory, &plain, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    let head = send(
        &svc,
        with_host(
            http::Request::head("http://a.example/"),
            "http://a.example/",
        ),
    )
    .await;
    assert!(head.is_hit());
    assert_eq!(head.headers["content-length"], "5");
}

#[tokio::test]
async fn a_revalidation_answered_uncacheable_drops_the_old_entry() {
    // RFC 9111 §4.3.3
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "max-age=1, stale-while-revalidate=0"),
            ("etag", "\"v\""),
        ],
        "old",
    );
    let (svc, _, clock) = cache(Backend::Memory, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(5));
    origin.answer(200, &[("cache-control", "no-store")], "new");
    assert_eq!(fetch(&svc, "http://a.example/").await.body, "new");
    origin.answer(500, &[], "down");
    let got = send(
        &svc,
        get("http://a.example/").header("cache-control", "max-stale"),
    )
    .await;
    assert_eq!(got.status, 500, "the old entry is gone, not served stale");
}

#[tokio::test]
async fn request_directives_can_be_ignored() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "x");
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| {
        b.obey_request_directives(false)
    })
    .await;
    fetch(&svc, "http://a.example/").await;
    for cc in ["no-cache", "max-age=0", "min-fresh=100"] {
        assert!(
            send(&svc, get("http://a.example/").header("cache-control", cc))
                .await
                .is_hit(),
            "{cc}"
        );
    }
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn a_targeted_field_never_lifts_private() {
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "private"),
            ("cdn-cache-control", "max-age=60"),
        ],
        "mine",
    );
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    let first = fetch(&svc, "http://a.example/").await;
    assert!(
        first.cache_status().ends_with("detail=private"),
        "{}",
        first.cache_status()
    );
    assert!(!fetch(&svc, "http://a.example/").await.is_hit());
}

#[tokio::test]
async fn ttl_jitter_spreads_lifetimes_within_its_bound() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=1000")], "x");
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b.ttl_jitter(50)).await;
    let mut ttls = std::collections::BTreeSet::new();
    for i in 0..40 {
        fetch(&svc, &format!("http://a.example/{i}")).await;
        let hit = fetch(&svc, &format!("http://a.example/{i}")).await;
        let ttl: i64 = hit
            .cache_status()
            .rsplit("ttl=")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((500..=1000).contains(&ttl), "{ttl}");
        ttls.insert(ttl);
    }
    assert!(ttls.len() > 10, "spread: {ttls:?}");
    assert!(
        parapet_cache::CacheLayer::builder()
            .ttl_jitter(51)
            .build()
            .is_err()
    );
    assert!(
        parapet_cache::CacheLayer::builder()
            .early_refresh(f64::NAN)
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn early_refresh_refreshes_hot_entries_before_they_expire() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=600")], "x");
    origin.slow(Duration::from_millis(20));
    // β so large that the first hit already refreshes; off, nothing is refreshed.
    for (beta, refreshed) in [(1e9, true), (0.0, false)] {
        let before = origin.calls();
        let (svc, layer) = common::cache_over(
            &origin,
            CacheLayer::builder().early_refresh(beta).build().unwrap(),
        );
        fetch(&svc, "http://a.example/hot").await;
        for _ in 0..5 {
            assert!(
                fetch(&svc, "http://a.example/hot").await.is_hit(),
                "served from the cache meanwhile"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(origin.calls() - before > 1, refreshed, "β = {beta}");
        assert_eq!(layer.handle().stats().refreshes > 0, refreshed);
    }
}

#[test]
fn a_lease_wait_must_be_shorter_than_the_leader_timeout() {
    let built = CacheLayer::builder()
        .leader_timeout(Duration::from_secs(1))
        .distributed_lease(Duration::from_secs(1))
        .build();
    assert!(
        built
            .unwrap_err()
            .to_string()
            .contains("shorter than leader_timeout")
    );
}

/// RFC 9111 §5.2.1.5: a request's `no-store` touches nothing stored. `no-cache, no-store`
/// used to make a revalidation whose answer could not be stored, which removed the entry
/// and set a hit-for-miss marker: every client then went to the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_directive_never_removes_or_marks_an_entry() {
    let origin = Origin::new();
    origin.answer(200, &[("cache-control", "public, max-age=60")], "kept");
    let (svc, _, clock) = cache(Backend::Memory, &origin, |b| b).await;
    fetch(&svc, "http://a.example/p").await;
    assert_eq!(origin.calls(), 1);
    // Fresh, then stale: neither state lets a request's directives remove the entry.
    for stale in [false, true] {
        if stale {
            clock.advance(Duration::from_secs(61));
            // The next plain request revalidates it (one call), then it is fresh again.
        }
        let attack = send(
            &svc,
            get("http://a.example/p").header("cache-control", "no-cache, no-store"),
        )
        .await;
        assert_eq!(attack.status, 200);
        assert!(
            attack.cache_status().contains("detail=no-store"),
            "{}",
            attack.cache_status()
        );
        let calls = origin.calls();
        origin.slow(Duration::from_millis(100));
        let got = concurrently(&svc, 30, || get("http://a.example/p")).await;
        origin.slow(Duration::ZERO);
        assert!(got.iter().all(|g| g.status == 200 && g.body == "kept"));
        let to_origin = origin.calls() - calls;
        assert!(
            to_origin <= 1,
            "stale={stale}: {to_origin} origin calls for 30 clients after the attack"
        );
    }
}

/// An error the request provokes (a 431 for a huge field) answers that request alone: it
/// removes no entry and stops no collapsing, whether the request asked for a revalidation
/// (`no-cache`) or the entry was stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_provoked_by_a_request_removes_nothing() {
    let origin = Origin::new();
    origin.respond_with(|req| {
        if req.headers().contains_key("x-huge") {
            common::response(431, &[], Bytes::from_static(b"too large"))
        } else {
            common::response(
                200,
                &[("cache-control".into(), "public, max-age=60".into())],
                Bytes::from_static(b"page"),
            )
        }
    });
    let (svc, _, clock) = cache(Backend::Memory, &origin, |b| b).await;
    fetch(&svc, "http://a.example/e").await;
    let huge = "x".repeat(70_000);
    for stale in [false, true] {
        if stale {
            clock.advance(Duration::from_secs(61));
        }
        let mut request = get("http://a.example/e").header("x-huge", huge.as_str());
        if !stale {
            request = request.header("cache-control", "no-cache");
        }
        let refused = send(&svc, request).await;
        assert_eq!(refused.status, 431, "stale={stale}");
        let calls = origin.calls();
        origin.slow(Duration::from_millis(100));
        let got = concurrently(&svc, 30, || get("http://a.example/e")).await;
        origin.slow(Duration::ZERO);
        assert!(got.iter().all(|g| g.status == 200 && g.body == "page"));
        assert!(
            origin.calls() - calls <= 1,
            "stale={stale}: {} origin calls for 30 clients",
            origin.calls() - calls
        );
    }
    // And a 400 with explicit freshness is never stored for everyone.
    origin.answer(400, &[("cache-control", "public, max-age=300")], "bad");
    let first = fetch(&svc, "http://a.example/bad").await;
    assert!(
        first.cache_status().ends_with("detail=client-error"),
        "{}",
        first.cache_status()
    );
    assert!(!fetch(&svc, "http://a.example/bad").await.is_hit());
}

/// What a request carries (credentials, `no-store` even with request directives ignored)
/// never lets its answer remove a stale entry or stop others collapsing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_request_carries_removes_nothing_stale() {
    let origin = Origin::new();
    // Without `public`: storable for anonymous requests only. The origin ignores the
    // validator, so every revalidation is a full 200.
    origin.answer(
        200,
        &[("cache-control", "max-age=60"), ("etag", "\"v\"")],
        "page",
    );
    let attacks: [(&str, &str); 3] = [
        ("cache-control", "no-store"),
        ("cookie", "session=abc"),
        ("authorization", "Bearer t"),
    ];
    for obey in [true, false] {
        for (name, value) in attacks {
            let (svc, _, clock) = cache(Backend::Memory, &origin, |b| {
                b.obey_request_directives(obey)
            })
            .await;
            fetch(&svc, "http://a.example/s").await;
            clock.advance(Duration::from_secs(61));
            let got = send(&svc, get("http://a.example/s").header(name, value)).await;
            assert_eq!(got.status, 200);
            let calls = origin.calls();
            origin.slow(Duration::from_millis(100));
            let got = concurrently(&svc, 30, || get("http://a.example/s")).await;
            origin.slow(Duration::ZERO);
            let statuses: Vec<String> = got.iter().map(|g| g.cache_status().to_owned()).collect();
            assert!(
                statuses.iter().all(|s| !s.contains("uri-miss")),
                "obey={obey} {name}: the stale entry was removed: {statuses:?}"
            );
            assert!(
                origin.calls() - calls <= 1,
                "obey={obey} {name}: {} origin calls for 30 clients",
                origin.calls() - calls
            );
        }
    }
}

/// A bad `Host` is a 400 whatever the method, so an unsafe request answering for another
/// host cannot invalidate this one's entries; an `Upgrade` handshake bypasses.
#[tokio::test]
async fn a_bad_host_on_any_method_is_a_400_and_upgrades_bypass() {
    let origin = Origin::new();
    echo_host(&origin);
    let (svc, _, _) = cache(Backend::Memory, &origin, |b| b).await;
    fetch(&svc, "http://victim.example/x").await;
    let calls = origin.calls();
    for method in ["POST", "DELETE"] {
        let request = Request::builder()
            .method(method)
            .uri("http://victim.example/x")
            .header("host", "attacker.example");
        assert_eq!(send(&svc, request).await.status, 400, "{method}");
        let request = Request::builder()
            .method(method)
            .uri("/x")
            .header("host", "victim.example")
            .header("host", "attacker.example");
        assert_eq!(send(&svc, request).await.status, 400, "{method}");
    }
    let binary = Request::get("/x").header(
        "host",
        http::HeaderValue::from_bytes(b"vi\xffctim").unwrap(),
    );
    assert_eq!(send(&svc, binary).await.status, 400);
    assert_eq!(origin.calls(), calls, "none reached the origin");
    assert!(
        fetch(&svc, "http://victim.example/x").await.is_hit(),
        "nothing invalidated"
    );
    let upgrade = send(
        &svc,
        get("http://victim.example/x")
            .header("connection", "upgrade")
            .header("upgrade", "websocket"),
    )
    .await;
    assert!(
        upgrade.cache_status().ends_with("detail=upgrade"),
        "{}",
        upgrade.cache_status()
    );
}
