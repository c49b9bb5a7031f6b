//! Hostile and odd input: forged proxy chains, garbage, huge headers, odd IPv6 forms, and
//! a flood of distinct keys. Each gets a documented key or a clear 4xx, never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::net::IpAddr;

use http::{HeaderValue, Request, StatusCode};
use parapet_core::ManualClock;
use parapet_ratelimit::key::{ClientIp, ForwardedHeader, KeyExtractor, PeerIp};
use parapet_ratelimit::{MemoryStore, Quota, RateLimitLayer, RateLimitStore, RequestHead, Subject};

use common::{request_from, send, service, set};

fn request(peer: &str, header: &str, values: &[&[u8]]) -> Request<()> {
    let mut request = request_from(peer);
    for v in values {
        request.headers_mut().append(
            http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    request
}

fn client(extractor: &ClientIp, request: &Request<()>) -> Option<String> {
    extractor
        .client(&RequestHead::of(request))
        .ok()
        .map(|ip| ip.to_string())
}

#[test]
fn forged_left_entries_never_change_the_key() {
    let trusted = ClientIp::trusted_proxies(["10.0.0.0/8"]).unwrap();
    let honest = request("10.0.0.2", "x-forwarded-for", &[b"203.0.113.7"]);
    assert_eq!(client(&trusted, &honest).as_deref(), Some("203.0.113.7"));
    for forged in [
        &b"1.2.3.4, 203.0.113.7"[..],
        b"garbage, 203.0.113.7",
        b"10.0.0.99, 203.0.113.7",
        b"::1, 203.0.113.7",
        b"1.1.1.1, 2.2.2.2, 3.3.3.3, 203.0.113.7",
    ] {
        let r = request("10.0.0.2", "x-forwarded-for", &[forged]);
        assert_eq!(
            client(&trusted, &r).as_deref(),
            Some("203.0.113.7"),
            "{}",
            String::from_utf8_lossy(forged)
        );
        let key = trusted.extract(&RequestHead::of(&r));
        assert_eq!(key, trusted.extract(&RequestHead::of(&honest)));
    }
    // A chain through two trusted proxies.
    let r = request(
        "10.0.0.2",
        "x-forwarded-for",
        &[b"6.6.6.6, 203.0.113.7, 10.1.1.1"],
    );
    assert_eq!(client(&trusted, &r).as_deref(), Some("203.0.113.7"));
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_claims() {
    let trusted = ClientIp::trusted_proxies(["10.0.0.0/8"]).unwrap();
    let r = request("198.51.100.5", "x-forwarded-for", &[b"10.0.0.1, 1.2.3.4"]);
    assert_eq!(client(&trusted, &r).as_deref(), Some("198.51.100.5"));
}

#[test]
fn hop_count_takes_the_nth_from_the_right() {
    let two = ClientIp::trusted_hops(2);
    let r = request(
        "10.0.0.2",
        "x-forwarded-for",
        &[b"6.6.6.6, 203.0.113.7, 10.1.1.1"],
    );
    assert_eq!(client(&two, &r).as_deref(), Some("203.0.113.7"));
    let short = request("10.0.0.2", "x-forwarded-for", &[b"203.0.113.8"]);
    assert_eq!(client(&two, &short).as_deref(), Some("203.0.113.8"));
    let none = request("198.51.100.5", "x-forwarded-for", &[]);
    assert_eq!(client(&two, &none).as_deref(), Some("198.51.100.5"));
}

#[test]
fn garbage_where_the_client_should_be_gives_no_key() {
    let trusted = ClientIp::trusted_proxies(["10.0.0.0/8"]).unwrap();
    for garbage in [
        &b"not-an-ip"[..],
        b"unknown",
        b"999.1.1.1",
        b"\xff\xfe",
        b"1.2.3.4:abc",
        b"[::1",
    ] {
        let r = request("10.0.0.2", "x-forwarded-for", &[garbage]);
        assert_eq!(
            client(&trusted, &r),
            None,
            "{}",
            String::from_utf8_lossy(garbage)
        );
    }
}

#[test]
fn forwarded_header_rfc7239() {
    let trusted = ClientIp::trusted_proxies(["10.0.0.0/8", "fd00::/8"])
        .unwrap()
        .header(ForwardedHeader::Forwarded);
    let r = request(
        "fd00::2",
        "forwarded",
        &[br#"for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.7"#],
    );
    assert_eq!(client(&trusted, &r).as_deref(), Some("2001:db8:cafe::17"));
    let obfuscated = request("10.0.0.2", "forwarded", &[b"for=_hidden"]);
    assert_eq!(client(&trusted, &obfuscated), None);
}

#[test]
fn odd_ipv6_forms_fold_to_one_key() {
    let peer = PeerIp::new();
    let key = |ip: &str| peer.extract(&RequestHead::of(&request_from(ip)));
    // One /56: same key, whatever the low bits or the spelling.
    let a = key("2001:db8:0:1200::1");
    assert_eq!(a, key("2001:0db8:0000:12ff:ffff:ffff:ffff:ffff"));
    assert_ne!(a, key("2001:db8:0:1300::1"));
    // IPv4-mapped IPv6 is the IPv4 address.
    assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
    let exact = PeerIp::new().ipv6_prefix(128);
    let e = |ip: &str| exact.extract(&RequestHead::of(&request_from(ip)));
    assert_ne!(e("2001:db8::1"), e("2001:db8::2"));
    assert_eq!(
        Subject::ip("192.0.2.1".parse::<IpAddr>().unwrap()),
        key("192.0.2.1").unwrap()
    );
}

#[tokio::test]
async fn bad_input_through_the_layer_is_a_4xx_never_a_500() {
    let layer = RateLimitLayer::builder()
        .policy("minute", Quota::per_minute(100))
        .key(ClientIp::trusted_proxies(["10.0.0.0/8"]).unwrap())
        .build()
        .unwrap();
    let mut svc = service(&layer);
    let huge = vec![b'1'; 64 * 1024];
    let many: Vec<u8> = std::iter::repeat_n(&b"10.0.0.1,"[..], 5_000)
        .flatten()
        .copied()
        .collect();
    let cases: Vec<(&str, Vec<&[u8]>, StatusCode)> = vec![
        ("10.0.0.2", vec![b"203.0.113.7"], StatusCode::OK),
        ("10.0.0.2", vec![b"garbage"], StatusCode::BAD_REQUEST),
        ("10.0.0.2", vec![&huge], StatusCode::BAD_REQUEST),
        ("10.0.0.2", vec![&many], StatusCode::BAD_REQUEST),
        ("10.0.0.2", vec![b"\x80\x81"], StatusCode::BAD_REQUEST),
        ("10.0.0.2", vec![b"", b" , ,"], StatusCode::OK),
        ("203.0.113.9", vec![&huge], StatusCode::OK),
    ];
    for (peer, values, want) in cases {
        let response = send(&mut svc, request(peer, "x-forwarded-for", &values)).await;
        assert_eq!(response.status(), want, "peer {peer}");
    }
}

#[tokio::test]
async fn a_million_keys_against_a_hundred_thousand_capacity_stay_bounded() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(100_000, clock.clone());
    let hour = set(&[("hour", Quota::per_hour(10))]);
    for i in 0..1_000_000u32 {
        let subject = Subject::new("flood", i.to_le_bytes());
        let decision = store.check(&subject, &hour, 1).await.unwrap();
        assert!(decision.outcome.is_admitted());
    }
    assert!(
        store.len() <= store.capacity(),
        "{} entries > capacity {}",
        store.len(),
        store.capacity()
    );
    assert!(store.capacity() <= 100_100);
    // About 17 bytes an entry at full load; the maps may hold twice that while growing.
    let bytes = store.allocated_bytes();
    assert!(bytes <= 100_000 * 40, "{bytes} bytes");
    // Recent keys are still limited correctly: the latest one has its state.
    let latest = Subject::new("flood", 999_999u32.to_le_bytes());
    assert_eq!(
        store.check(&latest, &hour, 0).await.unwrap().states[0].remaining,
        9
    );
}
