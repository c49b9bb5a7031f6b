//! Whatever a server or client writes in its cache headers — garbage, huge numbers, broken
//! quotes, invalid dates — the policy answers, never panics, and every duration stays within
//! RFC 9111's 2^31-second bound.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use parapet_cache::policy::{
    CacheControl, Heuristic, current_age, freshness_lifetime, storability,
};
use proptest::prelude::*;

const BOUND: Duration = Duration::from_secs(1 << 31);

fn field_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        6 => prop::sample::select(b"=,;\" \t\\-max-age=s-maxagepublicprivateno-cacheno-store0123456789".to_vec()),
        2 => 0x21u8..=0x7e,
        1 => 0x80u8..=0xff,
    ];
    prop::collection::vec(byte, 0..120)
}

fn headers(fields: &[(&str, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
        }
    }
    map
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_cache_headers_give_a_bounded_answer(
        cc in field_bytes(),
        expires in field_bytes(),
        date in field_bytes(),
        last_modified in field_bytes(),
        age in field_bytes(),
        status in 100u16..600,
        offsets in (0u64..1_000_000, 0u64..1_000_000),
    ) {
        let response = headers(&[
            ("cache-control", cc),
            ("expires", expires),
            ("date", date),
            ("last-modified", last_modified),
            ("age", age),
        ]);
        let parsed = CacheControl::from_headers(&response);
        let status = StatusCode::from_u16(status).unwrap();
        let received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        if let Some(lifetime) = freshness_lifetime(status, &response, &parsed, received, Heuristic::default()) {
            prop_assert!(lifetime <= BOUND);
        }
        let requested = received - Duration::from_secs(offsets.0);
        let now = received + Duration::from_secs(offsets.1);
        let age = current_age(&response, requested, received, now);
        // Apparent age at most `received` − the epoch; `Age` at most 2^31 s plus the flight.
        let initial = (received.duration_since(SystemTime::UNIX_EPOCH).unwrap())
            .max(BOUND + Duration::from_secs(offsets.0));
        prop_assert!(age <= initial + Duration::from_secs(offsets.1), "{age:?}");
        let _ = storability(&Method::GET, &HeaderMap::new(), status, &response, &parsed, true);
        for delta in [parsed.max_age, parsed.s_maxage, parsed.max_stale, parsed.min_fresh] {
            if let Some(d) = delta.seconds() {
                prop_assert!(d <= BOUND);
            }
        }
    }

    /// `no-store` or `private` written anywhere in the list, on any line, keeps the response
    /// out of the cache, whatever surrounds it.
    #[test]
    fn no_store_and_private_are_never_lost(
        before in "[a-z0-9=, -]{0,30}",
        after in "[a-z0-9=, -]{0,30}",
        directive in prop::sample::select(vec!["no-store", "private", "PRIVATE", "No-Store"]),
        own_line in any::<bool>(),
    ) {
        let mut response = HeaderMap::new();
        let value = if own_line {
            response.append("cache-control", HeaderValue::from_str(&before).unwrap());
            format!("{directive}, {after}")
        } else {
            format!("{before}, {directive}, {after}")
        };
        response.append("cache-control", HeaderValue::from_str(&value).unwrap());
        response.insert("expires", HeaderValue::from_static("Thu, 01 Jan 2099 00:00:00 GMT"));
        let cc = CacheControl::from_headers(&response);
        let verdict = storability(&Method::GET, &HeaderMap::new(), StatusCode::OK, &response, &cc, true);
        prop_assert!(verdict.is_err(), "{value:?} was storable");
    }
}
