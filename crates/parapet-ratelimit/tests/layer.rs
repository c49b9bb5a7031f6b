//! The layer over a plain tower service: statuses, headers, bodies and configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use parapet_core::{ManualClock, OnStoreError};
use parapet_ratelimit::key::{Global, HeaderKey, KeyExtractor};
use parapet_ratelimit::{
    HeaderStyle, MemoryStore, MissingKey, Policy, PolicySet, Quota, RateLimitError, RateLimitLayer,
    RateLimitStore, RejectionKind, Subject,
};

use common::{body, request_from, send, service, set};

fn layer(quota: Quota, clock: &ManualClock) -> RateLimitLayer {
    RateLimitLayer::builder()
        .policy("minute", quota)
        .headers(HeaderStyle::Ietf)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn hundred_per_minute_then_429_with_exact_retry_after() {
    let clock = ManualClock::new();
    let mut svc = service(&layer(Quota::per_minute(100), &clock));
    for i in 0..100 {
        let response = send(&mut svc, request_from("192.0.2.1")).await;
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
        assert_eq!(
            response.headers()["ratelimit"],
            format!(
                "\"minute\";r={};t={}",
                99 - i,
                (i + 1) * 600 / 1000 + u64::from((i + 1) * 600 % 1000 != 0)
            )
        );
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"minute\";q=100;w=60"
        );
        assert_eq!(body(response).await, "hello");
    }
    let response = send(&mut svc, request_from("192.0.2.1")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["ratelimit"], "\"minute\";r=0;t=60");
    assert!(
        body(response)
            .await
            .contains("\"violated_policies\":[\"minute\"]")
    );

    // Another client is not affected.
    assert_eq!(
        send(&mut svc, request_from("192.0.2.2")).await.status(),
        StatusCode::OK
    );

    // Waiting exactly Retry-After admits (600 ms needed; 1 s advertised).
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn legacy_both_and_no_headers() {
    let clock = ManualClock::new();
    let build = |style| {
        RateLimitLayer::builder()
            .policy("minute", Quota::per_minute(10))
            .policy("hour", Quota::per_hour(100))
            .headers(style)
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let response = send(
        &mut service(&build(HeaderStyle::Legacy)),
        request_from("192.0.2.1"),
    )
    .await;
    assert_eq!(response.headers()["x-ratelimit-limit"], "10");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "9");
    assert_eq!(response.headers()["x-ratelimit-reset"], "6");
    assert!(response.headers().get("ratelimit").is_none());

    let response = send(
        &mut service(&build(HeaderStyle::Both)),
        request_from("192.0.2.1"),
    )
    .await;
    assert!(response.headers().contains_key("x-ratelimit-remaining"));
    assert_eq!(
        response.headers()["ratelimit"],
        "\"minute\";r=9;t=6, \"hour\";r=99;t=36"
    );

    let mut none = service(&build(HeaderStyle::None));
    let response = send(&mut none, request_from("192.0.2.1")).await;
    assert!(
        !response
            .headers()
            .keys()
            .any(|k| k.as_str().contains("ratelimit"))
    );
    for _ in 0..9 {
        send(&mut none, request_from("192.0.2.1")).await;
    }
    let refused = send(&mut none, request_from("192.0.2.1")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.headers().contains_key("retry-after"),
        "Retry-After is always sent"
    );
}

#[tokio::test]
async fn by_default_only_retry_after() {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .build()
        .unwrap();
    let mut svc = service(&layer);
    let admitted = send(&mut svc, request_from("192.0.2.1")).await;
    assert_eq!(admitted.headers().len(), 0, "{:?}", admitted.headers());
    let refused = send(&mut svc, request_from("192.0.2.1")).await;
    let names: Vec<&str> = refused.headers().keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["content-type", "retry-after"]);
    assert_eq!(refused.headers()["retry-after"], "60");
    assert_eq!(
        body(refused).await,
        r#"{"title":"too many requests","status":429,"retry_after":60,"violated_policies":["minute"]}"#
    );
}

#[tokio::test]
async fn no_peer_address_is_a_500_that_names_the_fix_not_a_400() {
    for missing_key in [MissingKey::Reject, MissingKey::Skip] {
        let layer = RateLimitLayer::builder()
            .policy("minute", Quota::per_minute(1))
            .missing_key(missing_key)
            .build()
            .unwrap();
        let mut svc = service(&layer);
        for _ in 0..2 {
            let response = send(&mut svc, Request::new(())).await;
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                body(response).await,
                r#"{"title":"rate limiter misconfigured","status":500}"#
            );
        }
        let err = layer
            .limiter()
            .subject(&parapet_ratelimit::RequestHead::of(&Request::new(())));
        assert!(
            matches!(err, Err(parapet_ratelimit::key::NoKey::Misconfigured(fix)) if fix.contains("connect_info"))
        );
    }
}

#[tokio::test]
async fn missing_key_is_400_or_skipped() {
    let api_key = || HeaderKey::new(http::HeaderName::from_static("x-api-key"));
    let strict = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .key(api_key())
        .build()
        .unwrap();
    let mut svc = service(&strict);
    let response = send(&mut svc, Request::new(())).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        body(response).await,
        r#"{"title":"request has no rate-limit key","status":400}"#
    );

    let skip = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .key(api_key())
        .missing_key(MissingKey::Skip)
        .build()
        .unwrap();
    let mut svc = service(&skip);
    for _ in 0..3 {
        assert_eq!(
            send(&mut svc, Request::new(())).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn api_key_header_with_ip_fallback() {
    let key = HeaderKey::new(HeaderName::from_static("x-api-key"))
        .or(parapet_ratelimit::key::PeerIp::new());
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .key(key)
        .build()
        .unwrap();
    let mut svc = service(&layer);
    let with_key = |k: &str| {
        let mut r = request_from("192.0.2.1");
        r.headers_mut().insert("x-api-key", k.parse().unwrap());
        r
    };
    assert_eq!(
        send(&mut svc, with_key("alpha")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut svc, with_key("alpha")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&mut svc, with_key("beta")).await.status(),
        StatusCode::OK,
        "another key"
    );
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::OK,
        "falls back to the IP"
    );
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn resolver_chooses_policies_per_route() {
    let login = set(&[("login", Quota::per_minute(2))]);
    let api = set(&[("api", Quota::per_minute(100))]);
    let layer = RateLimitLayer::builder()
        .headers(HeaderStyle::Ietf)
        .resolver(move |head| match head.uri.path() {
            "/health" => None,
            "/login" => Some(login.clone()),
            _ => Some(api.clone()),
        })
        .build()
        .unwrap();
    let mut svc = service(&layer);
    let to = |path: &str| {
        let mut r = request_from("192.0.2.1");
        *r.uri_mut() = path.parse().unwrap();
        r
    };
    for _ in 0..2 {
        assert_eq!(send(&mut svc, to("/login")).await.status(), StatusCode::OK);
    }
    assert_eq!(
        send(&mut svc, to("/login")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&mut svc, to("/products")).await.status(),
        StatusCode::OK
    );
    let health = send(&mut svc, to("/health")).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().get("ratelimit").is_none());
}

#[tokio::test]
async fn weighted_cost_and_cost_above_burst() {
    let layer = RateLimitLayer::builder()
        .policy("second", Quota::per_second(10))
        .headers(HeaderStyle::Ietf)
        .key(Global)
        .cost(|head| {
            head.headers
                .get("x-cost")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1)
        })
        .build()
        .unwrap();
    let mut svc = service(&layer);
    let costing = |c: &str| {
        let mut r = Request::new(());
        r.headers_mut().insert("x-cost", c.parse().unwrap());
        r
    };
    let response = send(&mut svc, costing("8")).await;
    assert_eq!(response.headers()["ratelimit"], "\"second\";r=2;t=1");
    assert_eq!(
        send(&mut svc, costing("3")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let too_big = send(&mut svc, costing("11")).await;
    assert_eq!(
        too_big.status(),
        StatusCode::BAD_REQUEST,
        "waiting cannot help"
    );
    assert!(
        too_big.headers().get("retry-after").is_none(),
        "it will never fit: no Retry-After"
    );
    let text = body(too_big).await;
    assert!(text.contains("can never be admitted"), "{text}");
    assert!(text.contains(r#""violated_policies":["second"]"#), "{text}");
    // The largest cost there is, through the layer and through the store: refused, never
    // an overflow.
    assert_eq!(
        send(&mut svc, costing(&u32::MAX.to_string()))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let set = PolicySet::from(Policy::new("second", Quota::per_second(10)).unwrap());
    let store = MemoryStore::new(100);
    let err = store
        .check(&Subject::new("k", "v"), &set, u32::MAX)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "argument");
    assert_eq!(
        send(&mut svc, costing("0")).await.status(),
        StatusCode::OK,
        "free requests pass"
    );
}

#[tokio::test]
async fn allow_key_ban_and_programmatic_state() {
    let vip = Subject::ip("192.0.2.9".parse().unwrap());
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .allow_key(vip)
        .build()
        .unwrap();
    let mut svc = service(&layer);
    for _ in 0..5 {
        assert_eq!(
            send(&mut svc, request_from("192.0.2.9")).await.status(),
            StatusCode::OK
        );
    }
    let limiter = layer.limiter().clone();
    let abuser = Subject::ip("192.0.2.66".parse().unwrap());
    limiter.ban(&abuser, Duration::from_secs(30)).await.unwrap();
    let banned = send(&mut svc, request_from("192.0.2.66")).await;
    assert_eq!(banned.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = banned.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    limiter.unban(&abuser).await.unwrap();
    assert_eq!(
        send(&mut svc, request_from("192.0.2.66")).await.status(),
        StatusCode::OK
    );

    let minute = set(&[("minute", Quota::per_minute(1))]);
    let state = limiter.state(&abuser, &minute).await.unwrap();
    assert_eq!(state.states[0].remaining, 0);
    let err = limiter.check(&abuser, &minute, 2).await.unwrap_err();
    assert!(
        matches!(err, RateLimitError::CostExceedsBurst { cost: 2, .. }),
        "{err}"
    );
    limiter.reset(&abuser, &minute).await.unwrap();
    assert_eq!(
        limiter.state(&abuser, &minute).await.unwrap().states[0].remaining,
        1
    );
    assert_eq!(
        send(&mut svc, request_from("192.0.2.66")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn custom_rejection_response_keeps_retry_after() {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .key(Global)
        .rejection_response(|rejection| {
            let mut response =
                Response::new(Bytes::from(format!("slow down ({:?})", rejection.kind)));
            *response.status_mut() = rejection.status();
            response
        })
        .build()
        .unwrap();
    let mut svc = service(&layer);
    send(&mut svc, Request::new(())).await;
    let response = send(&mut svc, Request::new(())).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        body(response).await,
        format!("slow down ({:?})", RejectionKind::Limited)
    );
}

#[test]
fn invalid_configuration_is_a_build_error() {
    let err = RateLimitLayer::builder().build().unwrap_err();
    assert!(err.to_string().contains("no policy configured"), "{err}");
    let err = RateLimitLayer::builder()
        .policy("has space", Quota::per_minute(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("policy name must be"), "{err}");
    let err = RateLimitLayer::builder()
        .policy("zero", Quota::per_minute(0))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("must be above zero"), "{err}");
    let err = RateLimitLayer::builder()
        .policy("burst0", Quota::per_minute(10).burst(0))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("must be above zero"), "{err}");
    let err = RateLimitLayer::builder()
        .policy("a", Quota::per_minute(1))
        .policy("a", Quota::per_hour(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("invalid policy set"), "{err}");
    let err = RateLimitLayer::builder()
        .policy("fast", Quota::new(2_000_000, Duration::from_secs(1)))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("quota out of range"), "{err}");
    let err = RateLimitLayer::builder()
        .policy(
            "century",
            Quota::new(1, Duration::from_secs(100 * 365 * 86_400)),
        )
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("quota out of range"), "{err}");
    assert!(
        RateLimitLayer::builder()
            .policy("m", Quota::per_minute(1))
            .memory_capacity(0)
            .build()
            .is_err()
    );
    assert!(
        RateLimitLayer::builder()
            .policy("m", Quota::per_minute(1))
            .resolver(|_| None)
            .build()
            .is_err()
    );
    // Every error says what is wrong, in lower case.
    assert!(
        err.to_string()
            .starts_with("invalid configuration: policy century: quota out of range"),
        "{err}"
    );
}

#[tokio::test]
async fn on_store_error_setting_does_not_affect_a_healthy_memory_store() {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .on_store_error(OnStoreError::FailClosed)
        .build()
        .unwrap();
    let mut svc = service(&layer);
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut svc, request_from("192.0.2.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Only some statuses count: server errors are refunded, so ten failures leave the quota
/// whole.
#[tokio::test]
async fn refund_when_counts_only_some_statuses() {
    use tower::Layer;

    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(2))
        .key(Global)
        .refund_when(|status| status.is_server_error())
        .build()
        .unwrap();
    let mut svc = layer.layer(common::StatusOn {
        path: "/fail",
        status: StatusCode::INTERNAL_SERVER_ERROR,
    });
    let mut get = async |path| common::status_of(&mut svc, path).await;
    for _ in 0..10 {
        assert_eq!(get("/fail").await, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(get("/ok").await, StatusCode::OK);
    assert_eq!(get("/ok").await, StatusCode::OK);
    assert_eq!(get("/ok").await, StatusCode::TOO_MANY_REQUESTS);
}

/// A forwarding header whose client hop is garbage is refused even when requests without a
/// key are let through: a malformed header must not become a pass.
#[tokio::test]
async fn a_malformed_client_address_is_400_even_with_skip() {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(1))
        .key(parapet_ratelimit::key::ClientIp::trusted_proxies(["192.0.2.0/24"]).unwrap())
        .missing_key(MissingKey::Skip)
        .build()
        .unwrap();
    let mut svc = service(&layer);
    for forged in ["unknown", "not-an-ip, 192.0.2.9"] {
        let mut request = request_from("192.0.2.1");
        request
            .headers_mut()
            .insert("x-forwarded-for", forged.parse().unwrap());
        assert_eq!(
            send(&mut svc, request).await.status(),
            StatusCode::BAD_REQUEST,
            "{forged}"
        );
    }
}

/// `ip_subject` folds an address as the layer's key does, also with another IPv6 prefix.
#[tokio::test]
async fn ip_subject_follows_the_keys_prefix() {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(100))
        .key(parapet_ratelimit::key::PeerIp::new().ipv6_prefix(128))
        .build()
        .unwrap();
    let mut svc = service(&layer);
    let ip = "2001:db8::1".parse().unwrap();
    layer
        .limiter()
        .ban(&layer.limiter().ip_subject(ip), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        send(&mut svc, request_from("2001:db8::1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&mut svc, request_from("2001:db8::2")).await.status(),
        StatusCode::OK,
        "a /128 key"
    );
}
