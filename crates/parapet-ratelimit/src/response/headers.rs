//! Rendering of the rate-limit header fields.
//!
//! The IETF fields follow draft-ietf-httpapi-ratelimit-headers (§3 `RateLimit-Policy`, §4
//! `RateLimit`): Structured Field Lists (RFC 9651 §3.1) of String items naming each policy,
//! with Integer parameters `q` (quota), `w` (window, seconds), `r` (remaining), `t` (seconds
//! until the quota resets). `sfv` does the serialization so quoting and ranges are right.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderValue, RETRY_AFTER};
use sfv::{ItemSerializer, KeyRef, ListSerializer, StringRef};
use std::fmt::Write;

use crate::{HeaderStyle, Policy, PolicySet, PolicyState};

pub(crate) use parapet_core::decision_fields::{
    RATELIMIT, RATELIMIT_POLICY, X_RATELIMIT_LIMIT as X_LIMIT,
    X_RATELIMIT_REMAINING as X_REMAINING, X_RATELIMIT_RESET as X_RESET,
};

/// Whole seconds, rounded up; `at_least_one` for `Retry-After`, where 0 would invite an
/// immediate retry that is bound to fail.
pub(crate) fn ceil_seconds(d: Duration, at_least_one: bool) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if at_least_one { secs.max(1) } else { secs }
}

/// A policy's name as an sf-string item (`"minute"`), rendered once when its set is built.
pub(crate) fn name_item(policy: &Policy) -> String {
    match StringRef::from_str(policy.name()) {
        Ok(name) => ItemSerializer::new().bare_item(name).finish(),
        // Unreachable: names are validated to [A-Za-z0-9_.-].
        Err(_) => String::from("\"\""),
    }
}

/// `RateLimit-Policy` for a set, rendered once when the set is built.
pub(crate) fn policy_header(policies: &[Policy]) -> HeaderValue {
    let mut list = ListSerializer::new();
    for policy in policies {
        let quota = policy.quota();
        let window = ceil_seconds(quota.period(), true);
        let name = StringRef::from_str(policy.name());
        // Policy names are validated to [A-Za-z0-9_.-], always valid sf-strings.
        if let Ok(name) = name {
            list.bare_item(name)
                .parameter(
                    KeyRef::constant("q"),
                    clamp_integer(u64::from(quota.rate())),
                )
                .parameter(KeyRef::constant("w"), clamp_integer(window));
        }
    }
    let text = list.finish().unwrap_or_default();
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds the rate-limit fields of `style` for a decision on `set`. Without `states` (a
/// refusal from the local deny cache) only `RateLimit-Policy` can be told.
///
/// Limiters may be nested (per client outside, per user inside): each appends its items to
/// the IETF lists, so every policy is told, and the single-valued legacy fields keep the
/// tighter of what is there and this decision (a refusal's `remaining: 0` is never
/// overwritten by an outer limiter that admitted the request).
pub(crate) fn insert(
    headers: &mut HeaderMap,
    style: HeaderStyle,
    set: &PolicySet,
    states: &[PolicyState],
) {
    if style.ietf() {
        headers.append(RATELIMIT_POLICY, set.ietf_policy_header().clone());
    }
    if states.is_empty() {
        return;
    }
    headers.reserve(if style.legacy() { 4 } else { 1 });
    if style.ietf() {
        // On every response, so no general serializer here: each policy's name item was
        // serialized by sfv when the set was built; what is added are sf-integers (digits).
        let mut value = String::with_capacity(32 * states.len());
        for (i, (item, state)) in set.ietf_name_items().iter().zip(states).enumerate() {
            let t = ceil_seconds(state.reset_after, false);
            // Writing to a String cannot fail.
            let _ = write!(
                value,
                "{}{item};r={};t={}",
                if i > 0 { ", " } else { "" },
                clamp_integer(state.remaining),
                clamp_integer(t)
            );
        }
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
            headers.append(RATELIMIT, value);
        }
    }
    if style.legacy() {
        // The most constrained policy: fewest remaining, then the longest reset.
        let tightest = set
            .policies()
            .iter()
            .zip(states)
            .min_by_key(|(_, s)| (s.remaining, std::cmp::Reverse(s.reset_after)));
        let there = headers
            .get(&X_REMAINING)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let tightest = tightest.filter(|(_, s)| there.is_none_or(|there| s.remaining < there));
        if let Some((policy, state)) = tightest {
            headers.insert(X_LIMIT, HeaderValue::from(policy.quota().rate()));
            headers.insert(X_REMAINING, HeaderValue::from(state.remaining));
            headers.insert(
                X_RESET,
                HeaderValue::from(ceil_seconds(state.reset_after, false)),
            );
        }
    }
}

/// `Retry-After: <seconds>` (RFC 9110 §10.2.3), at least 1.
pub(crate) fn insert_retry_after(headers: &mut HeaderMap, retry_after: Duration) {
    headers.insert(
        RETRY_AFTER,
        HeaderValue::from(ceil_seconds(retry_after, true)),
    );
}

/// sf-integers hold 15 decimal digits (RFC 9651 §3.3.1); our values never come close, but
/// clamp rather than fail.
fn clamp_integer(n: u64) -> sfv::Integer {
    sfv::Integer::try_from(n.min(999_999_999_999_999)).unwrap_or(sfv::Integer::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quota;

    #[test]
    fn ceil_seconds_rounds_up() {
        assert_eq!(ceil_seconds(Duration::from_millis(1), true), 1);
        assert_eq!(ceil_seconds(Duration::ZERO, true), 1);
        assert_eq!(ceil_seconds(Duration::ZERO, false), 0);
        assert_eq!(ceil_seconds(Duration::from_millis(2001), false), 3);
        assert_eq!(ceil_seconds(Duration::from_secs(2), false), 2);
    }

    #[test]
    fn fields_parse_as_structured_lists() {
        let set = PolicySet::new([
            Policy::new("minute", Quota::per_minute(100)).unwrap(),
            Policy::new("day", Quota::per_day(1000)).unwrap(),
        ])
        .unwrap();
        let states = [
            PolicyState {
                remaining: 42,
                reset_after: Duration::from_millis(34_500),
                retry_after: None,
            },
            PolicyState {
                remaining: 7,
                reset_after: Duration::from_secs(80_000),
                retry_after: None,
            },
        ];
        let mut headers = HeaderMap::new();
        insert(&mut headers, HeaderStyle::Both, &set, &states);
        assert_eq!(
            headers[RATELIMIT_POLICY],
            r#""minute";q=100;w=60, "day";q=1000;w=86400"#
        );
        assert_eq!(
            headers[RATELIMIT],
            r#""minute";r=42;t=35, "day";r=7;t=80000"#
        );
        for name in [RATELIMIT_POLICY, RATELIMIT] {
            let list: sfv::List = sfv::Parser::new(headers[&name].as_bytes()).parse().unwrap();
            assert_eq!(list.len(), 2);
        }
        assert_eq!(headers[X_LIMIT], "1000");
        assert_eq!(headers[X_REMAINING], "7");
        assert_eq!(headers[X_RESET], "80000");
    }

    /// A per-user limiter inside refused; the per-IP limiter outside admitted the request
    /// and adds its fields: both policies are told, and the legacy fields stay the
    /// refusal's.
    #[test]
    fn nested_limiters_append_and_keep_the_tighter_legacy_fields() {
        let state = |remaining| PolicyState {
            remaining,
            reset_after: Duration::from_secs(30),
            retry_after: None,
        };
        let user = PolicySet::new([Policy::new("user", Quota::per_minute(10)).unwrap()]).unwrap();
        let ip = PolicySet::new([Policy::new("ip", Quota::per_minute(100)).unwrap()]).unwrap();
        let mut headers = HeaderMap::new();
        insert(&mut headers, HeaderStyle::Both, &user, &[state(0)]);
        insert(&mut headers, HeaderStyle::Both, &ip, &[state(57)]);
        let joined = |name| {
            let lines: Vec<&str> = headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            lines.join(", ")
        };
        // Every field line together is one list (RFC 9651 §3.1).
        let list: sfv::List = sfv::Parser::new(joined(RATELIMIT).as_bytes())
            .parse()
            .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(joined(RATELIMIT), r#""user";r=0;t=30, "ip";r=57;t=30"#);
        assert_eq!(
            joined(RATELIMIT_POLICY),
            r#""user";q=10;w=60, "ip";q=100;w=60"#
        );
        assert_eq!(headers[X_LIMIT], "10");
        assert_eq!(headers[X_REMAINING], "0");
    }
}
