//! RFC-derived conformance: one test per requirement, through the layer, against an origin
//! the test controls. Section numbers are RFC 9111 unless said otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use common::{Backend, Origin, cache, fetch, get, send, with_host};
use parapet_cache::{CacheOverride, SetCookie};

const PUBLIC_60: (&str, &str) = ("cache-control", "public, max-age=60");

async fn fresh_responses_are_served_from_the_cache_with_age(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60, ("etag", "\"v1\"")], "hello");
    let (svc, _, clock) = cache(backend, &origin, |b| b).await;
    let first = fetch(&svc, "http://a.example/x").await;
    assert_eq!(
        first.cache_status(),
        "parapet; fwd=uri-miss; fwd-status=200; stored"
    );
    clock.advance(Duration::from_secs(7));
    let second = fetch(&svc, "http://a.example/x").await;
    assert_eq!(origin.calls(), 1);
    assert_eq!(second.body, "hello");
    assert_eq!(second.headers["age"], "7", "§4.2.3, §5.1");
    assert_eq!(second.cache_status(), "parapet; hit; ttl=53");
}

async fn s_maxage_wins_over_max_age_which_wins_over_expires(backend: Backend) {
    // §4.2.1
    let origin = Origin::new();
    origin.answer(
        200,
        &[("cache-control", "max-age=60, s-maxage=2, stale-if-error=0")],
        "x",
    );
    let (svc, _, clock) = cache(backend, &origin, |b| b.keep(Duration::ZERO)).await;
    fetch(&svc, "http://a.example/s").await;
    clock.advance(Duration::from_secs(3));
    assert!(!fetch(&svc, "http://a.example/s").await.is_hit());
    assert_eq!(origin.calls(), 2);

    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
    origin.answer(
        200,
        &[
            ("cache-control", "max-age=1"),
            ("date", &date),
            ("expires", &later),
        ],
        "x",
    );
    fetch(&svc, "http://a.example/m").await;
    clock.advance(Duration::from_secs(2));
    assert!(
        !fetch(&svc, "http://a.example/m").await.is_hit(),
        "max-age beats Expires"
    );

    origin.answer(200, &[("date", &date), ("expires", &later)], "x");
    fetch(&svc, "http://a.example/e").await;
    clock.advance(Duration::from_secs(600));
    assert!(
        fetch(&svc, "http://a.example/e").await.is_hit(),
        "Expires - Date = 1 h"
    );
}

async fn an_invalid_expires_means_already_stale(backend: Backend) {
    // §5.3: "0" and other non-dates are in the past.
    let origin = Origin::new();
    origin.answer(200, &[("expires", "0")], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b.keep(Duration::ZERO)).await;
    fetch(&svc, "http://a.example/").await;
    assert!(!fetch(&svc, "http://a.example/").await.is_hit());
}

async fn heuristic_freshness_only_where_4_2_2_allows(backend: Backend) {
    let origin = Origin::new();
    let now = std::time::SystemTime::now();
    let modified = httpdate::fmt_http_date(now - Duration::from_secs(10 * 86_400));
    let date = httpdate::fmt_http_date(now);
    origin.answer(200, &[("last-modified", &modified), ("date", &date)], "x");
    let (svc, _, clock) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/h").await;
    clock.advance(Duration::from_secs(3600));
    assert!(
        fetch(&svc, "http://a.example/h").await.is_hit(),
        "10% of 10 days"
    );

    origin.answer(201, &[("last-modified", &modified), ("date", &date)], "x");
    let created = fetch(&svc, "http://a.example/c").await;
    assert!(
        created.cache_status().contains("detail=no-freshness"),
        "{}",
        created.cache_status()
    );

    let (strict, _, _) = cache(backend, &origin, |b| b.heuristic(None)).await;
    origin.answer(200, &[("last-modified", &modified)], "x");
    let got = fetch(&strict, "http://a.example/h").await;
    assert!(got.cache_status().contains("detail=no-freshness"));
}

async fn no_freshness_is_not_stored_unless_a_default_ttl_is_configured(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    assert!(!fetch(&svc, "http://a.example/").await.is_hit());
    let (ttl, _, _) = cache(backend, &origin, |b| b.default_ttl(Duration::from_secs(5))).await;
    fetch(&ttl, "http://a.example/").await;
    assert!(fetch(&ttl, "http://a.example/").await.is_hit());
    // A per-request override gives its own default.
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let with =
        || get("http://a.example/o").extension(CacheOverride::default_ttl(Duration::from_secs(5)));
    send(&svc, with()).await;
    assert!(send(&svc, with()).await.is_hit());
    let bypass = send(
        &svc,
        get("http://a.example/o").extension(CacheOverride::bypass()),
    )
    .await;
    assert_eq!(
        bypass.cache_status(),
        "parapet; fwd=bypass; detail=override"
    );
}

async fn private_no_store_and_server_errors_are_never_stored(backend: Backend) {
    for (status, headers, detail) in [
        (
            200,
            vec![("cache-control", "private, max-age=60")],
            "private",
        ),
        (
            200,
            vec![("cache-control", "private=\"x-user\", max-age=60")],
            "private",
        ),
        (
            200,
            vec![("cache-control", "no-store, max-age=60")],
            "no-store",
        ),
        (500, vec![PUBLIC_60], "server-error"),
        (503, vec![PUBLIC_60], "server-error"),
        (200, vec![PUBLIC_60, ("vary", "*")], "vary-any"),
        (206, vec![PUBLIC_60], "status"),
    ] {
        let origin = Origin::new();
        origin.answer(status, &headers, "x");
        let (svc, _, _) = cache(backend, &origin, |b| b).await;
        let first = fetch(&svc, "http://a.example/").await;
        assert!(
            first.cache_status().ends_with(&format!("detail={detail}")),
            "{headers:?}: {}",
            first.cache_status()
        );
        fetch(&svc, "http://a.example/").await;
        assert_eq!(origin.calls(), 2, "{headers:?}");
    }
}

async fn a_request_with_no_store_is_not_stored(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    send(
        &svc,
        get("http://a.example/").header("cache-control", "no-store"),
    )
    .await;
    assert!(!fetch(&svc, "http://a.example/").await.is_hit());
}

async fn credentials_need_public_or_s_maxage_and_explicit_freshness(backend: Backend) {
    // §3.5, narrowed: `must-revalidate` says nothing of who may see an answer, and a
    // response to a request with a cookie is as personal as one with `Authorization`.
    let origin = Origin::new();
    let (svc, _, _) = cache(backend, &origin, |b| b).await; // heuristic freshness is on
    for credentials in [("authorization", "Bearer t"), ("cookie", "session=abc")] {
        let with = |path: &str| {
            get(&format!("http://a.example{path}")).header(credentials.0, credentials.1)
        };
        for (i, cc) in ["max-age=60", "max-age=60, must-revalidate"]
            .iter()
            .enumerate()
        {
            let path = format!("/{}-{i}", credentials.0);
            origin.answer(200, &[("cache-control", cc)], "mine");
            let got = send(&svc, with(&path)).await;
            assert!(
                got.cache_status().ends_with("detail=credentials"),
                "{cc}: {}",
                got.cache_status()
            );
            assert!(
                !fetch(&svc, &format!("http://a.example{path}"))
                    .await
                    .is_hit(),
                "{cc}"
            );
        }
        for cc in ["public, max-age=60", "s-maxage=60"] {
            let path = format!("/{}-{}", credentials.0, cc.len());
            origin.answer(200, &[("cache-control", cc)], "shared");
            send(&svc, with(&path)).await;
            assert!(send(&svc, with(&path)).await.is_hit(), "{cc}");
        }
        // Under heuristic freshness (Last-Modified, no lifetime) only without credentials.
        let path = format!("/{}-heuristic", credentials.0);
        origin.answer(
            200,
            &[
                ("cache-control", "public"),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
            "page",
        );
        let got = send(&svc, with(&path)).await;
        assert!(
            !got.cache_status().contains("stored"),
            "{}",
            got.cache_status()
        );
        assert!(
            !fetch(&svc, &format!("http://a.example{path}"))
                .await
                .is_hit()
        );
    }
    origin.answer(
        200,
        &[
            ("cache-control", "public"),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ],
        "page",
    );
    fetch(&svc, "http://a.example/anonymous-heuristic-2").await;
    assert!(
        fetch(&svc, "http://a.example/anonymous-heuristic-2")
            .await
            .is_hit()
    );
}

async fn set_cookie_is_never_replayed_by_default(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60, ("set-cookie", "session=alice")], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let first = fetch(&svc, "http://a.example/").await;
    assert_eq!(
        first.headers["set-cookie"], "session=alice",
        "its own client gets it"
    );
    assert!(first.cache_status().ends_with("detail=set-cookie"));
    let second = fetch(&svc, "http://a.example/").await;
    assert!(!second.is_hit());

    let (strip, _, _) = cache(backend, &origin, |b| b.set_cookie(SetCookie::Strip)).await;
    assert_eq!(
        fetch(&strip, "http://a.example/").await.headers["set-cookie"],
        "session=alice"
    );
    let hit = fetch(&strip, "http://a.example/").await;
    assert!(hit.is_hit());
    assert!(
        !hit.headers.contains_key("set-cookie"),
        "stored without the cookie"
    );

    let (as_is, _, _) = cache(backend, &origin, |b| b.set_cookie(SetCookie::StoreAsIs)).await;
    fetch(&as_is, "http://a.example/").await;
    assert_eq!(
        fetch(&as_is, "http://a.example/").await.headers["set-cookie"],
        "session=alice"
    );
}

async fn no_cache_is_stored_but_revalidated_before_each_reuse(backend: Backend) {
    // §5.2.2.4
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "no-cache, max-age=60"),
            ("etag", "\"v1\""),
        ],
        "body",
    );
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    origin.answer(304, &[("etag", "\"v1\"")], "");
    let second = fetch(&svc, "http://a.example/").await;
    assert_eq!(origin.calls(), 2, "validated");
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    assert_eq!((second.status, &second.body[..]), (200, &b"body"[..]));
    assert!(
        second.cache_status().contains("fwd-status=304"),
        "{}",
        second.cache_status()
    );
}

async fn no_cache_without_a_lifetime_is_stored_for_revalidation(backend: Backend) {
    // §3 (a 200 may be stored), §5.2.2.4: stale at once, validated before each reuse.
    let origin = Origin::new();
    origin.answer(
        200,
        &[("cache-control", "no-cache"), ("etag", "\"v1\"")],
        "body",
    );
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let first = fetch(&svc, "http://a.example/").await;
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    origin.answer(304, &[("etag", "\"v1\"")], "");
    let second = fetch(&svc, "http://a.example/").await;
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    assert_eq!((second.status, &second.body[..]), (200, &b"body"[..]));
    // Without a validator there is nothing to revalidate with: not stored.
    origin.answer(200, &[("cache-control", "no-cache")], "plain");
    let plain = fetch(&svc, "http://a.example/plain").await;
    assert!(
        !plain.cache_status().contains("stored"),
        "{}",
        plain.cache_status()
    );
}

async fn accept_language_is_compared_in_canonical_form(backend: Backend) {
    // RFC 9110 §12.5.4, RFC 4647 §2: ranges are case-insensitive; whitespace and `q=1`
    // say nothing. The order of equal weights is kept: many servers read it as a choice.
    let origin = Origin::new();
    echo_accept_language(&origin);
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let lang = |l: &str| get("http://a.example/").header("accept-language", l);
    send(&svc, lang("en, de;q=0.5")).await;
    for same in ["EN,De;Q=0.5", "  en ;q=1.0 ,   de;q=0.50", "de;q=0.5, en"] {
        assert!(send(&svc, lang(same)).await.is_hit(), "{same}");
    }
    send(&svc, lang("en, de")).await;
    assert!(
        !send(&svc, lang("de, en")).await.is_hit(),
        "another first choice is another variant"
    );
}

async fn no_cache_with_field_names_strips_them_from_the_stored_copy(backend: Backend) {
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "public, max-age=60, no-cache=\"x-secret\""),
            ("x-secret", "s"),
        ],
        "x",
    );
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    assert_eq!(
        fetch(&svc, "http://a.example/").await.headers["x-secret"],
        "s"
    );
    let hit = fetch(&svc, "http://a.example/").await;
    assert!(hit.is_hit());
    assert!(!hit.headers.contains_key("x-secret"));
}

async fn must_revalidate_is_never_served_stale(backend: Backend) {
    // §5.2.2.2: not with max-stale, not on error.
    let origin = Origin::new();
    origin.answer(
        200,
        &[(
            "cache-control",
            "max-age=1, must-revalidate, stale-if-error=60",
        )],
        "x",
    );
    let (svc, _, clock) = cache(backend, &origin, |b| b.grace(Duration::from_secs(60))).await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(5));
    origin.answer(502, &[], "down");
    let got = send(
        &svc,
        get("http://a.example/").header("cache-control", "max-stale=100"),
    )
    .await;
    assert_eq!(got.status, 502);
}

async fn request_directives_are_honoured(backend: Backend) {
    // §5.2.1
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60, ("etag", "\"e\"")], "x");
    let (svc, _, clock) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(10));
    let with = |cc: &str| get("http://a.example/").header("cache-control", cc);
    assert!(send(&svc, with("max-age=20")).await.is_hit());
    assert!(send(&svc, with("min-fresh=40")).await.is_hit());
    let calls = origin.calls();
    for cc in ["no-cache", "max-age=5", "min-fresh=55", "max-age=0"] {
        // Each validation stores the answer afresh: let it age past the limits again.
        clock.advance(Duration::from_secs(10));
        let got = send(&svc, with(cc)).await;
        assert!(
            got.cache_status().contains("fwd=request"),
            "{cc}: {}",
            got.cache_status()
        );
    }
    assert_eq!(origin.calls(), calls + 4);
    clock.advance(Duration::from_secs(65));
    let stale = send(&svc, with("max-stale=30")).await;
    assert!(stale.is_hit() && stale.cache_status().contains("detail=max-stale"));
    assert!(send(&svc, with("max-stale")).await.is_hit());
}

async fn only_if_cached_gets_504_without_a_usable_response(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let only = || get("http://a.example/").header("cache-control", "only-if-cached");
    assert_eq!(send(&svc, only()).await.status, 504);
    assert_eq!(origin.calls(), 0);
    fetch(&svc, "http://a.example/").await;
    assert!(send(&svc, only()).await.is_hit());
}

/// The origin answers with the request's `Accept-Language`, varying on it, fresh 60 s.
fn echo_accept_language(origin: &Origin) {
    origin.respond_with(|req| {
        let lang = req
            .headers()
            .get("accept-language")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        common::response(
            200,
            &[
                ("cache-control".into(), "max-age=60".into()),
                ("vary".into(), "Accept-Language".into()),
            ],
            lang.into(),
        )
    });
}

async fn vary_keeps_one_variant_per_combination(backend: Backend) {
    // §4.1
    let origin = Origin::new();
    echo_accept_language(&origin);
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let lang = |l: &str| get("http://a.example/").header("accept-language", l);
    assert_eq!(send(&svc, lang("en")).await.body, "en");
    let fr = send(&svc, lang("fr")).await;
    assert!(
        fr.cache_status().contains("fwd=vary-miss"),
        "{}",
        fr.cache_status()
    );
    assert_eq!(send(&svc, lang("en")).await.body, "en");
    let hit = send(&svc, lang("fr")).await;
    assert!(hit.is_hit());
    assert_eq!(hit.body, "fr");
    assert_eq!(origin.calls(), 2);
}

/// The `Vary` cap keeps the variants clients use: an attacker's junk values leave first.
/// (Before: the first stored, the one in use, left first in memory, and on Redis the 17th
/// variant dropped every other.)
async fn the_vary_cap_keeps_the_variants_in_use(backend: Backend) {
    let origin = Origin::new();
    echo_accept_language(&origin);
    let (svc, _, _) = cache(backend, &origin, |b| b.max_variants(4)).await;
    let lang = |l: &str| get("http://a.example/").header("accept-language", l);
    for lang_in_use in ["en", "fr"] {
        for _ in 0..5 {
            send(&svc, lang(lang_in_use)).await;
        }
    }
    for i in 0..20 {
        send(&svc, lang(&format!("junk{i}"))).await;
    }
    for lang_in_use in ["en", "fr"] {
        let got = send(&svc, lang(lang_in_use)).await;
        assert!(got.is_hit(), "{lang_in_use}: {}", got.cache_status());
        assert_eq!(got.body, lang_in_use);
    }
    assert_eq!(origin.calls(), 22, "two variants in use, twenty junk");
    assert!(
        !send(&svc, lang("junk0")).await.is_hit(),
        "the cap holds: early junk is gone"
    );
}

async fn a_304_updates_the_stored_headers(backend: Backend) {
    // §3.2, §4.3.4
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "max-age=1"),
            ("etag", "\"v1\""),
            ("x-version", "1"),
        ],
        "body",
    );
    let (svc, _, clock) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(2));
    origin.answer(
        304,
        &[
            ("cache-control", "max-age=100"),
            ("etag", "\"v1\""),
            ("x-version", "2"),
        ],
        "",
    );
    let validated = fetch(&svc, "http://a.example/").await;
    assert_eq!(validated.headers["x-version"], "2");
    assert_eq!(validated.body, "body");
    clock.advance(Duration::from_secs(50));
    let hit = fetch(&svc, "http://a.example/").await;
    assert!(
        hit.is_hit(),
        "fresh for the new max-age: {}",
        hit.cache_status()
    );
    assert_eq!(hit.headers["x-version"], "2");
    assert_eq!(origin.calls(), 2);
}

async fn a_304_for_another_representation_is_not_applied(backend: Backend) {
    let origin = Origin::new();
    origin.answer(
        200,
        &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
        "body",
    );
    let (svc, _, clock) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(2));
    origin.answer(304, &[("etag", "\"v2\"")], "");
    assert_eq!(fetch(&svc, "http://a.example/").await.status, 502);
    origin.answer(
        200,
        &[("cache-control", "max-age=60"), ("etag", "\"v2\"")],
        "new",
    );
    assert_eq!(
        fetch(&svc, "http://a.example/").await.body,
        "new",
        "the old entry is gone"
    );
}

async fn client_validators_are_answered_from_the_cache(backend: Backend) {
    // RFC 9110 §13.1.1, §13.1.3, §13.2.2
    let origin = Origin::new();
    let modified = "Sun, 06 Nov 1994 08:49:37 GMT";
    origin.answer(
        200,
        &[PUBLIC_60, ("etag", "W/\"v1\""), ("last-modified", modified)],
        "body",
    );
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    let inm = send(
        &svc,
        get("http://a.example/").header("if-none-match", "\"v1\""),
    )
    .await;
    assert_eq!(inm.status, 304);
    assert!(inm.body.is_empty());
    assert_eq!(inm.headers["etag"], "W/\"v1\"");
    let ims = send(
        &svc,
        get("http://a.example/").header("if-modified-since", modified),
    )
    .await;
    assert_eq!(ims.status, 304);
    let other = send(
        &svc,
        get("http://a.example/").header("if-none-match", "\"v2\""),
    )
    .await;
    assert_eq!((other.status, &other.body[..]), (200, &b"body"[..]));
    assert_eq!(origin.calls(), 1);
}

async fn unsafe_methods_invalidate_the_target_and_same_origin_locations(backend: Backend) {
    // §4.4
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    for path in ["/items", "/items/7", "/other"] {
        fetch(&svc, &format!("http://a.example{path}")).await;
    }
    origin.answer(
        201,
        &[
            ("location", "/items/7"),
            ("content-location", "http://b.example/other"),
        ],
        "",
    );
    let post = send(&svc, http::Request::post("http://a.example/items")).await;
    assert_eq!(post.cache_status(), "parapet; fwd=method");
    origin.answer(200, &[PUBLIC_60], "x");
    assert!(!fetch(&svc, "http://a.example/items").await.is_hit());
    assert!(!fetch(&svc, "http://a.example/items/7").await.is_hit());
    assert!(
        fetch(&svc, "http://a.example/other").await.is_hit(),
        "another origin's URI stays"
    );
    // A failed unsafe request invalidates nothing.
    origin.answer(500, &[], "");
    send(&svc, http::Request::delete("http://a.example/other")).await;
    origin.answer(200, &[PUBLIC_60], "x");
    assert!(fetch(&svc, "http://a.example/other").await.is_hit());
}

async fn a_head_answer_refreshes_or_invalidates_the_stored_get(backend: Backend) {
    // §4.3.5
    let origin = Origin::new();
    let (svc, _, clock) = cache(backend, &origin, |b| b).await;
    let head = |path: &str| {
        let uri = format!("http://a.example{path}");
        with_host(http::Request::head(uri.as_str()), &uri)
    };
    for (path, etag_now, kept) in [("/same", "\"v1\"", true), ("/changed", "\"v2\"", false)] {
        origin.answer(
            200,
            &[("cache-control", "max-age=10"), ("etag", "\"v1\"")],
            "abc",
        );
        fetch(&svc, &format!("http://a.example{path}")).await;
        clock.advance(Duration::from_secs(11));
        // The origin answers the HEAD with a 200 (it ignores the validator).
        origin.answer(
            200,
            &[("cache-control", "max-age=10"), ("etag", etag_now)],
            "abc",
        );
        let calls = origin.calls();
        let got = send(&svc, head(path)).await;
        assert_eq!(got.status, 200);
        assert_eq!(
            origin.calls(),
            calls + 1,
            "{path}: the HEAD went to the origin"
        );
        let get = fetch(&svc, &format!("http://a.example{path}")).await;
        assert_eq!(get.is_hit(), kept, "{path}: {}", get.cache_status());
        assert_eq!(get.body, "abc");
    }
    // A HEAD revalidation the client asked for (fresh entry, `no-cache`), or one carrying
    // credentials, neither refreshes nor removes anything.
    origin.answer(
        200,
        &[("cache-control", "max-age=10"), ("etag", "\"v1\"")],
        "abc",
    );
    fetch(&svc, "http://a.example/asked").await;
    origin.answer(
        200,
        &[("cache-control", "max-age=10"), ("etag", "\"v9\"")],
        "abc",
    );
    send(&svc, head("/asked").header("cache-control", "no-cache")).await;
    assert!(fetch(&svc, "http://a.example/asked").await.is_hit());
    clock.advance(Duration::from_secs(11));
    send(&svc, head("/asked").header("cookie", "session=abc")).await;
    let after = fetch(&svc, "http://a.example/asked").await;
    assert!(
        after.cache_status().contains("fwd=stale"),
        "{}",
        after.cache_status()
    );
}

async fn head_is_answered_from_a_stored_get_and_never_stored_as_one(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60, ("content-length", "5")], "hello");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let head = send(
        &svc,
        with_host(
            http::Request::head("http://a.example/h"),
            "http://a.example/h",
        ),
    )
    .await;
    assert!(
        head.cache_status().ends_with("detail=method"),
        "{}",
        head.cache_status()
    );
    assert!(
        !fetch(&svc, "http://a.example/h").await.is_hit(),
        "the HEAD was not stored"
    );
    let head = send(
        &svc,
        with_host(
            http::Request::head("http://a.example/h"),
            "http://a.example/h",
        ),
    )
    .await;
    assert!(head.is_hit());
    assert!(head.body.is_empty());
    assert_eq!(head.headers["content-length"], "5");
}

async fn stale_while_revalidate_serves_stale_and_refreshes_once(backend: Backend) {
    // RFC 5861 §3
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "max-age=1, stale-while-revalidate=60"),
            ("x-v", "1"),
        ],
        "old",
    );
    let (svc, layer, clock) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(5));
    origin.answer(200, &[("cache-control", "max-age=60"), ("x-v", "2")], "new");
    origin.slow(Duration::from_millis(200));
    let mut stale = Vec::new();
    for _ in 0..20 {
        stale.push(fetch(&svc, "http://a.example/").await);
    }
    assert!(
        stale
            .iter()
            .all(|g| g.body == "old" && g.cache_status().contains("detail=stale-while-revalidate"))
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(origin.calls(), 2, "exactly one refresh");
    assert_eq!(layer.handle().stats().refreshes, 1);
    let fresh = fetch(&svc, "http://a.example/").await;
    assert_eq!(fresh.body, "new");
    assert!(fresh.is_hit());
}

async fn stale_if_error_serves_stale_on_errors_within_its_window(backend: Backend) {
    // RFC 5861 §4
    let origin = Origin::new();
    origin.answer(
        200,
        &[("cache-control", "max-age=1, stale-if-error=30")],
        "good",
    );
    let (svc, _, clock) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(10));
    origin.answer(503, &[], "down");
    let got = fetch(&svc, "http://a.example/").await;
    assert_eq!((got.status, &got.body[..]), (200, &b"good"[..]));
    assert!(
        got.cache_status().contains("detail=stale-if-error"),
        "{}",
        got.cache_status()
    );
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        fetch(&svc, "http://a.example/").await.status,
        503,
        "past the window"
    );
}

async fn stale_if_error_serves_stale_when_the_origin_is_too_slow(backend: Backend) {
    let origin = Origin::new();
    origin.answer(
        200,
        &[("cache-control", "max-age=1, stale-if-error=30")],
        "good",
    );
    let (svc, _, clock) = cache(backend, &origin, |b| {
        b.origin_timeout(Duration::from_millis(50))
    })
    .await;
    fetch(&svc, "http://a.example/").await;
    clock.advance(Duration::from_secs(5));
    origin.slow(Duration::from_secs(5));
    let started = std::time::Instant::now();
    let got = fetch(&svc, "http://a.example/").await;
    assert_eq!(got.body, "good");
    assert!(got.cache_status().contains("detail=origin-timeout"));
    assert!(started.elapsed() < Duration::from_secs(2));
}

async fn cdn_cache_control_and_the_targeted_field_take_precedence(backend: Backend) {
    // RFC 9213 §2.1
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
        "x",
    );
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let first = fetch(&svc, "http://a.example/").await;
    assert_eq!(
        first.headers["cdn-cache-control"], "max-age=60",
        "left for caches downstream"
    );
    assert!(fetch(&svc, "http://a.example/").await.is_hit());

    // §2.1: a field that is not a valid Structured Field Dictionary is ignored whole, and
    // Cache-Control decides.
    for invalid in [
        "no-store, ",
        "no-store,,max-age=0",
        "\"no-store\"",
        "no-store;;",
        "no-store, max-age=\"0\"",
        "no-store, s-maxage=-1",
        "no-store, max-age=(0)",
    ] {
        origin.answer(
            200,
            &[
                ("cache-control", "public, max-age=60"),
                ("cdn-cache-control", invalid),
            ],
            "x",
        );
        let (svc, _, _) = cache(backend, &origin, |b| b).await;
        fetch(&svc, "http://a.example/i").await;
        assert!(
            fetch(&svc, "http://a.example/i").await.is_hit(),
            "{invalid}"
        );
    }

    origin.answer(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("parapet-cache-control", "no-store"),
        ],
        "x",
    );
    let (own, _, _) = cache(backend, &origin, |b| {
        b.targeted_field("Parapet-Cache-Control")
    })
    .await;
    let first = fetch(&own, "http://a.example/").await;
    assert!(
        !first.headers.contains_key("parapet-cache-control"),
        "stripped before it leaves"
    );
    assert!(!fetch(&own, "http://a.example/").await.is_hit());
}

async fn cache_status_is_a_valid_structured_field_list(backend: Backend) {
    // RFC 9211 §2: an sf-list of items with parameters.
    let origin = Origin::new();
    origin.answer(
        200,
        &[PUBLIC_60, ("cache-status", "origin-cache; hit")],
        "x",
    );
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    for got in [
        fetch(&svc, "http://a.example/").await,
        fetch(&svc, "http://a.example/").await,
    ] {
        let lines: Vec<&str> = got
            .headers
            .get_all("cache-status")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        let joined = lines.join(", ");
        let list = sfv::Parser::new(&joined).parse::<sfv::List>().unwrap();
        let last = list.last().unwrap();
        let sfv::ListEntry::Item(item) = last else {
            panic!("an item")
        };
        assert_eq!(
            item.bare_item.as_token().map(|t| t.as_str()),
            Some("parapet"),
            "ours comes last"
        );
    }
}

async fn poisoning_headers_bypass_the_cache_unless_keyed(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    for name in parapet_cache::UNKEYED_HEADERS {
        let got = send(&svc, get("http://a.example/").header(name, "evil.example")).await;
        assert_eq!(
            got.cache_status(),
            "parapet; fwd=bypass; detail=unkeyed-header",
            "{name}"
        );
    }
    let (keyed, _, _) = cache(backend, &origin, |b| {
        b.key_header(http::HeaderName::from_static("x-forwarded-host"))
    })
    .await;
    let host = |h: &str| get("http://a.example/").header("x-forwarded-host", h);
    send(&keyed, host("evil.example")).await;
    assert!(send(&keyed, host("evil.example")).await.is_hit());
    assert!(
        !send(&keyed, host("good.example")).await.is_hit(),
        "another value, another entry"
    );
}

async fn keys_separate_host_query_and_scheme(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/p?a=1&b=2").await;
    assert!(fetch(&svc, "http://A.EXAMPLE/p?a=1&b=2").await.is_hit());
    for other in [
        "http://b.example/p?a=1&b=2",
        "http://a.example/p?b=2&a=1",
        "https://a.example/p?a=1&b=2",
        "http://a.example/p",
    ] {
        assert!(!fetch(&svc, other).await.is_hit(), "{other}");
    }
    let (sorted, _, _) = cache(backend, &origin, |b| {
        b.query_key(parapet_cache::QueryKey::Sorted)
    })
    .await;
    fetch(&sorted, "http://a.example/p?a=1&b=2").await;
    assert!(fetch(&sorted, "http://a.example/p?b=2&a=1").await.is_hit());
}

async fn bodies_over_the_limit_stream_through_unstored(backend: Backend) {
    let origin = Origin::new();
    let big = "x".repeat(2000);
    origin.answer(200, &[PUBLIC_60], &big);
    let (svc, _, _) = cache(backend, &origin, |b| b.max_body_bytes(1000)).await;
    let got = fetch(&svc, "http://a.example/").await;
    assert_eq!(got.body.len(), 2000);
    assert!(got.cache_status().ends_with("detail=too-big"));
    assert!(!fetch(&svc, "http://a.example/").await.is_hit());
}

async fn purges_by_prefix_and_tag_hard_and_soft(backend: Backend) {
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            PUBLIC_60,
            ("surrogate-key", "product-1 list"),
            ("etag", "\"e\""),
        ],
        "x",
    );
    let (svc, layer, clock) = cache(backend, &origin, |b| b).await;
    let handle = layer.handle();
    for path in ["/products", "/products/1", "/productsale", "/t"] {
        let got = fetch(&svc, &format!("http://a.example{path}")).await;
        assert!(
            !got.headers.contains_key("surrogate-key"),
            "tags never leave"
        );
    }
    clock.advance(Duration::from_secs(1));
    handle.purge_prefix("/products").await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(!fetch(&svc, "http://a.example/products").await.is_hit());
    assert!(!fetch(&svc, "http://a.example/products/1").await.is_hit());
    assert!(fetch(&svc, "http://a.example/productsale").await.is_hit());
    clock.advance(Duration::from_secs(1));
    handle.purge_tag("product-1").await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(!fetch(&svc, "http://a.example/t").await.is_hit());
    clock.advance(Duration::from_secs(1));
    handle.soft_purge_tag("list").await.unwrap();
    origin.answer(304, &[("etag", "\"e\"")], "");
    let soft = fetch(&svc, "http://a.example/t").await;
    assert!(
        soft.cache_status().contains("fwd=stale; fwd-status=304"),
        "{}",
        soft.cache_status()
    );
    assert_eq!(soft.body, "x");
    handle
        .invalidate(&parapet_cache::CacheKey::new(
            "http",
            "a.example",
            "/productsale",
        ))
        .await
        .unwrap();
    origin.answer(200, &[PUBLIC_60], "x");
    assert!(!fetch(&svc, "http://a.example/productsale").await.is_hit());
}

async fn a_response_without_a_body_is_stored(backend: Backend) {
    // A 204 has no body for anyone to read: it is stored all the same (RFC 9110 §15.3.5).
    let origin = Origin::new();
    origin.answer(204, &[PUBLIC_60], "");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    // As hyper serves a 204: the body is never polled.
    let request = get("http://a.example/none")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let first = tower::ServiceExt::oneshot(svc.clone(), request)
        .await
        .unwrap();
    assert_eq!(first.status(), 204);
    drop(first);
    // A remote store finishes on its own, a moment later.
    let mut again = fetch(&svc, "http://a.example/none").await;
    for _ in 0..50 {
        if again.is_hit() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        again = fetch(&svc, "http://a.example/none").await;
    }
    assert_eq!(again.status, 204);
    assert!(again.is_hit(), "{}", again.cache_status());
    assert_eq!(origin.calls(), 1, "stored from the first answer");
}

async fn preconditions_other_than_validators_bypass(backend: Backend) {
    let origin = Origin::new();
    origin.answer(200, &[PUBLIC_60], "x");
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    fetch(&svc, "http://a.example/").await;
    for (name, value) in [
        ("if-match", "\"a\""),
        ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ] {
        let got = send(&svc, get("http://a.example/").header(name, value)).await;
        assert!(
            got.cache_status().ends_with("detail=precondition"),
            "{name}"
        );
    }
}

async fn ranges_are_served_from_a_stored_response(backend: Backend) {
    let text = |got: &common::Got| String::from_utf8_lossy(&got.body).into_owned();
    // RFC 9110 §14
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            PUBLIC_60,
            ("etag", "\"v1\""),
            ("content-type", "text/plain"),
        ],
        "0123456789",
    );
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    // Not stored yet: the range goes to the origin as asked, its answer is not stored.
    let first = send(&svc, get("http://a.example/r").header("range", "bytes=0-1")).await;
    assert!(
        first.cache_status().ends_with("detail=range"),
        "{}",
        first.cache_status()
    );
    assert_eq!(origin.last_seen()["range"], "bytes=0-1");
    assert!(
        !fetch(&svc, "http://a.example/r").await.is_hit(),
        "nothing partial stored"
    );
    assert_eq!(origin.calls(), 2);
    let range = |value: &'static str| get("http://a.example/r").header("range", value);

    let one = send(&svc, range("bytes=2-4")).await;
    assert_eq!((one.status, text(&one).as_str()), (206, "234"));
    assert_eq!(one.headers["content-range"], "bytes 2-4/10");
    assert_eq!(one.headers["content-length"], "3");
    assert_eq!(one.headers["content-type"], "text/plain");
    assert!(one.is_hit());
    assert_eq!(text(&send(&svc, range("bytes=-3")).await), "789");
    assert_eq!(text(&send(&svc, range("bytes=7-")).await), "789");

    let many = send(&svc, range("bytes=0-1, 8-9")).await;
    assert_eq!(many.status, 206);
    let kind = many.headers["content-type"].to_str().unwrap().to_owned();
    let boundary = kind
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap();
    assert!(text(&many).contains("content-range: bytes 0-1/10\r\n\r\n01"));
    assert!(text(&many).contains("content-range: bytes 8-9/10\r\n\r\n89"));
    assert!(text(&many).ends_with(&format!("--{boundary}--\r\n")));

    let none = send(&svc, range("bytes=20-30")).await;
    assert_eq!(none.status, 416);
    assert_eq!(none.headers["content-range"], "bytes */10");
    assert_eq!(
        none.headers["cache-control"], "no-store",
        "no cache keeps a 416"
    );
    assert!(!none.headers.contains_key("content-type"));

    // Overlapping ranges merge: sixteen `1-` make one part, not sixteen copies.
    let overlapping = vec!["1-"; 16].join(",");
    let merged = send(
        &svc,
        get("http://a.example/r").header("range", format!("bytes={overlapping}")),
    )
    .await;
    assert_eq!((merged.status, text(&merged).as_str()), (206, "123456789"));

    // A HEAD's Range is ignored.
    let head = send(
        &svc,
        http::Request::head("http://a.example/r").header("range", "bytes=0-1"),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], "10");
    assert_eq!(text(&none), "");

    // A Range it cannot read is ignored: the whole response.
    let bad = send(&svc, range("bytes=4-2")).await;
    assert_eq!((bad.status, text(&bad).as_str()), (200, "0123456789"));

    // If-Range: the ranges only while the stored response is the one the client has.
    let same = send(&svc, range("bytes=0-0").header("if-range", "\"v1\"")).await;
    assert_eq!((same.status, text(&same).as_str()), (206, "0"));
    let changed = send(&svc, range("bytes=0-0").header("if-range", "\"v0\"")).await;
    assert_eq!(
        (changed.status, text(&changed).as_str()),
        (200, "0123456789")
    );

    // A client's validators still come first (RFC 9110 §13.2.2).
    let not_modified = send(&svc, range("bytes=0-0").header("if-none-match", "\"v1\"")).await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(
        origin.calls(),
        2,
        "every range above from the stored response"
    );
}

async fn grpc_passes_through_untouched(backend: Backend) {
    let origin = Origin::new();
    origin.answer(
        200,
        &[
            ("cache-control", "public, max-age=60"),
            ("content-type", "application/grpc"),
        ],
        "x",
    );
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    for _ in 0..2 {
        let got = send(
            &svc,
            http::Request::post("http://a.example/pkg.Svc/Get")
                .header("content-type", "application/grpc"),
        )
        .await;
        assert!(!got.headers.contains_key("cache-status"));
    }
    assert_eq!(origin.calls(), 2);
}

async fn request_extensions_reach_the_inner_service(backend: Backend) {
    #[derive(Clone)]
    struct User(&'static str);
    let origin = Origin::new();
    origin.respond_with(|req| {
        let user = req.extensions().get::<User>().map_or("none", |u| u.0);
        common::response(200, &[], bytes::Bytes::from(user))
    });
    let (svc, _, _) = cache(backend, &origin, |b| b).await;
    let got = send(&svc, get("http://a.example/").extension(User("alice"))).await;
    assert_eq!(got.body, "alice");
}

/// Every requirement above, on every store: memory, Redis, Redis Cluster, memory in front
/// of Redis.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Memory).await })*
        }
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Redis).await })*
        }
        mod cluster {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Cluster).await })*
        }
        mod tiered {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Tiered).await })*
        }
    };
}

on_every_store!(
    grpc_passes_through_untouched,
    request_extensions_reach_the_inner_service,
    fresh_responses_are_served_from_the_cache_with_age,
    s_maxage_wins_over_max_age_which_wins_over_expires,
    an_invalid_expires_means_already_stale,
    heuristic_freshness_only_where_4_2_2_allows,
    no_freshness_is_not_stored_unless_a_default_ttl_is_configured,
    private_no_store_and_server_errors_are_never_stored,
    a_request_with_no_store_is_not_stored,
    credentials_need_public_or_s_maxage_and_explicit_freshness,
    set_cookie_is_never_replayed_by_default,
    no_cache_is_stored_but_revalidated_before_each_reuse,
    no_cache_with_field_names_strips_them_from_the_stored_copy,
    must_revalidate_is_never_served_stale,
    request_directives_are_honoured,
    only_if_cached_gets_504_without_a_usable_response,
    vary_keeps_one_variant_per_combination,
    the_vary_cap_keeps_the_variants_in_use,
    no_cache_without_a_lifetime_is_stored_for_revalidation,
    accept_language_is_compared_in_canonical_form,
    a_304_updates_the_stored_headers,
    a_304_for_another_representation_is_not_applied,
    client_validators_are_answered_from_the_cache,
    unsafe_methods_invalidate_the_target_and_same_origin_locations,
    head_is_answered_from_a_stored_get_and_never_stored_as_one,
    a_head_answer_refreshes_or_invalidates_the_stored_get,
    stale_while_revalidate_serves_stale_and_refreshes_once,
    stale_if_error_serves_stale_on_errors_within_its_window,
    stale_if_error_serves_stale_when_the_origin_is_too_slow,
    cdn_cache_control_and_the_targeted_field_take_precedence,
    cache_status_is_a_valid_structured_field_list,
    poisoning_headers_bypass_the_cache_unless_keyed,
    keys_separate_host_query_and_scheme,
    bodies_over_the_limit_stream_through_unstored,
    purges_by_prefix_and_tag_hard_and_soft,
    preconditions_other_than_validators_bypass,
    ranges_are_served_from_a_stored_response,
    a_response_without_a_body_is_stored,
);
