//! How long a response stays fresh (RFC 9111 §4.2.1, §4.2.2), and how old a stored one is
//! (§4.2.3).

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, HeaderName, StatusCode};

use super::{CacheControl, Delta};

/// Status codes a cache may give a heuristic freshness lifetime (RFC 9110 §15.1).
const HEURISTICALLY_CACHEABLE: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// The heuristic of §4.2.2: a fraction of the time since `Last-Modified`, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heuristic {
    /// The fraction, in percent (the RFC's typical 10%).
    pub percent: u32,
    /// The longest lifetime it may give.
    pub max: Duration,
}

impl Default for Heuristic {
    /// 10% of the time since `Last-Modified`, at most one day.
    fn default() -> Self {
        Self {
            percent: 10,
            max: Duration::from_secs(86_400),
        }
    }
}

/// True for the status codes that may be given a heuristic lifetime.
pub fn is_heuristically_cacheable(status: StatusCode) -> bool {
    HEURISTICALLY_CACHEABLE.contains(&status.as_u16())
}

/// The freshness lifetime of a response in a shared cache: `s-maxage`, else `max-age`, else
/// `Expires` − `Date`, else the heuristic (only with `Last-Modified`, and only for a status
/// that allows it or a `public` response). `None`: the response says nothing of how long
/// it stays fresh.
///
/// Freshness information that cannot be trusted — a directive repeated with another value or
/// without a number, two `Expires` lines, an `Expires` that is not an HTTP-date (such as `0`)
/// — gives a lifetime of zero: stale at once (§4.2.1, §5.3). `received` is when the
/// response arrived, used when it has no valid `Date`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::{HeaderMap, StatusCode};
/// use parapet_cache::policy::{CacheControl, Heuristic, freshness_lifetime};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cache-control", "max-age=60, s-maxage=30".parse().unwrap());
/// let cc = CacheControl::from_headers(&headers);
/// let lifetime = freshness_lifetime(StatusCode::OK, &headers, &cc, SystemTime::now(), Heuristic::default());
/// assert_eq!(lifetime, Some(Duration::from_secs(30)));
/// ```
pub fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    cc: &CacheControl,
    received: SystemTime,
    heuristic: Heuristic,
) -> Option<Duration> {
    let lifetime = 'found: {
        for directive in [cc.s_maxage, cc.max_age] {
            match directive {
                Delta::Absent => {}
                Delta::Seconds(d) => break 'found Some(d),
                Delta::Bare | Delta::Invalid => break 'found Some(Duration::ZERO),
            }
        }
        let date = single_date(headers, &DATE).flatten().unwrap_or(received);
        match single_date(headers, &EXPIRES) {
            None => {}
            Some(Some(expires)) => {
                break 'found Some(expires.duration_since(date).unwrap_or_default());
            }
            Some(None) => break 'found Some(Duration::ZERO),
        }
        if !(is_heuristically_cacheable(status) || cc.public) {
            break 'found None;
        }
        let Some(last_modified) = single_date(headers, &LAST_MODIFIED).flatten() else {
            break 'found None;
        };
        let since = date.duration_since(last_modified).unwrap_or_default();
        Some((since / 100 * heuristic.percent).min(heuristic.max))
    };
    // Never more than 2^31 s (§1.2.2's bound for delta-seconds, applied to `Expires` too),
    // so that no sum of times made from it can overflow.
    lifetime.map(|d| d.min(MAX_LIFETIME))
}

/// The longest lifetime: 2^31 seconds, about 68 years.
const MAX_LIFETIME: Duration = Duration::from_secs(1 << 31);

/// The one HTTP-date of field `name`: `None` when absent, `Some(None)` when it is not
/// exactly one valid date.
pub(crate) fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<Option<SystemTime>> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return Some(None);
    }
    Some(first.to_str().ok().and_then(http_date))
}

/// An HTTP-date (RFC 9110 §5.6.7): one of its three forms (IMF-fixdate, and the obsolete
/// RFC 850 and asctime forms that recipients should accept), exactly as the grammar has
/// them, except that names may be in any case and a weekday that does not match the date
/// is ignored (it adds nothing the date does not say). Anything else (`UTC`, a two-digit
/// year in the IMF form, missing commas, extra spaces) is not a date.
pub(crate) fn http_date(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(time) = httpdate::parse_http_date(text) {
        return Some(time);
    }
    let recased = recase(text);
    if let Ok(time) = httpdate::parse_http_date(&recased) {
        return Some(time);
    }
    // The weekday is the first word of every form; only a day's name is replaced.
    let split = recased.find(|c: char| !c.is_ascii_alphabetic())?;
    let (weekday, rest) = recased.split_at(split);
    let names: &[&str] = if LONG_DAYS.contains(&weekday) {
        &LONG_DAYS
    } else if SHORT_DAYS.contains(&weekday) {
        &SHORT_DAYS
    } else {
        return None;
    };
    names
        .iter()
        .filter(|name| **name != weekday)
        .find_map(|name| httpdate::parse_http_date(&format!("{name}{rest}")).ok())
}

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `text` with its day and month names and `GMT` in the grammar's case; other words and
/// every other character left as they are.
fn recase(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let word_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        if word_len == 0 {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let (word, tail) = rest.split_at(word_len);
        let known = SHORT_DAYS
            .iter()
            .chain(&LONG_DAYS)
            .chain(&MONTHS)
            .chain(&["GMT"])
            .find(|name| name.eq_ignore_ascii_case(word));
        out.push_str(known.copied().unwrap_or(word));
        rest = tail;
    }
    out
}

/// The age of a stored response now (§4.2.3): what it had when it arrived (its `Age`, the
/// time it spent in flight, or `received − Date`, whichever is largest) plus the time it has
/// spent here since. `requested` and `received` are when the request that fetched it went out
/// and when the response came back.
pub fn current_age(
    headers: &HeaderMap,
    requested: SystemTime,
    received: SystemTime,
    now: SystemTime,
) -> Duration {
    let date = single_date(headers, &DATE).flatten().unwrap_or(received);
    let apparent_age = received.duration_since(date).unwrap_or_default();
    let response_delay = received.duration_since(requested).unwrap_or_default();
    let corrected_age = age_field(headers).saturating_add(response_delay);
    let initial_age = apparent_age.max(corrected_age);
    let resident_time = now.duration_since(received).unwrap_or_default();
    initial_age.saturating_add(resident_time)
}

/// The `Age` field: its first member, or zero when absent or invalid (§5.1).
fn age_field(headers: &HeaderMap) -> Duration {
    let Some(value) = headers.get(AGE).and_then(|v| v.to_str().ok()) else {
        return Duration::ZERO;
    };
    let first = value.split(',').next().unwrap_or("").trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Duration::ZERO;
    }
    Duration::from_secs(first.parse::<u64>().unwrap_or(1 << 31).min(1 << 31))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    fn lifetime(status: u16, pairs: &[(&str, &str)]) -> Option<u64> {
        let h = headers(pairs);
        let cc = CacheControl::from_headers(&h);
        let received = httpdate::parse_http_date("Mon, 23 Nov 2026 12:00:00 GMT").unwrap();
        freshness_lifetime(
            StatusCode::from_u16(status).unwrap(),
            &h,
            &cc,
            received,
            Heuristic::default(),
        )
        .map(|d| d.as_secs())
    }

    const DATE_NOW: &str = "Mon, 23 Nov 2026 12:00:00 GMT";

    #[test]
    fn precedence_s_maxage_max_age_expires() {
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=60, s-maxage=10")]),
            Some(10)
        );
        assert_eq!(
            lifetime(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("expires", "Mon, 23 Nov 2026 13:00:00 GMT"),
                    ("date", DATE_NOW)
                ]
            ),
            Some(60)
        );
        assert_eq!(
            lifetime(
                200,
                &[
                    ("expires", "Mon, 23 Nov 2026 13:00:00 GMT"),
                    ("date", DATE_NOW)
                ]
            ),
            Some(3600)
        );
    }

    #[test]
    fn untrusted_freshness_is_stale() {
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=10, max-age=20")]),
            Some(0)
        );
        assert_eq!(lifetime(200, &[("expires", "0")]), Some(0));
        assert_eq!(
            lifetime(
                200,
                &[
                    ("expires", "Mon, 23 Nov 2026 13:00:00 GMT"),
                    ("expires", "Mon, 23 Nov 2026 14:00:00 GMT")
                ]
            ),
            Some(0)
        );
        assert_eq!(
            lifetime(
                200,
                &[
                    ("expires", "Sun, 22 Nov 2026 13:00:00 GMT"),
                    ("date", DATE_NOW)
                ]
            ),
            Some(0),
            "expired before it was sent"
        );
    }

    #[test]
    fn heuristic_only_where_allowed() {
        let ten_days_ago = "Fri, 13 Nov 2026 12:00:00 GMT";
        assert_eq!(
            lifetime(200, &[("last-modified", ten_days_ago), ("date", DATE_NOW)]),
            Some(86_400),
            "10% of ten days, capped at a day"
        );
        let an_hour_ago = "Mon, 23 Nov 2026 11:00:00 GMT";
        assert_eq!(
            lifetime(200, &[("last-modified", an_hour_ago), ("date", DATE_NOW)]),
            Some(360)
        );
        assert_eq!(
            lifetime(302, &[("last-modified", an_hour_ago), ("date", DATE_NOW)]),
            None
        );
        assert_eq!(
            lifetime(
                302,
                &[
                    ("last-modified", an_hour_ago),
                    ("date", DATE_NOW),
                    ("cache-control", "public")
                ]
            ),
            Some(360)
        );
        assert_eq!(lifetime(200, &[]), None, "nothing said, nothing assumed");
    }

    #[test]
    fn obsolete_and_odd_date_forms_are_read() {
        let at = |s: &str| httpdate::parse_http_date(s).unwrap();
        // The three forms, names in any case, a weekday that does not match the date.
        let expected = at("Thu, 18 Aug 2050 02:01:18 GMT");
        for lenient in [
            "THU, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 AUG 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 gmt",
            "Thursday, 18-Aug-50 02:01:18 GMT",
            "Thu Aug 18 02:01:18 2050",
            "Mon Aug 18 02:01:18 2050",
            "monday, 18-aug-50 02:01:18 GMT",
        ] {
            assert_eq!(http_date(lenient), Some(expected), "{lenient}");
        }
        assert_eq!(
            http_date("Thu Aug  8 02:01:18 2050"),
            Some(at("Mon, 08 Aug 2050 02:01:18 GMT"))
        );
        // What the grammar does not have stays invalid (the suite's required tests).
        for invalid in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "0",
            "tomorrow",
            ", 18 Aug 2050 02:01:18 GMT",
            "X, 18 Aug 2050 02:01:18 GMT",
            "Never, 18-Aug-50 02:01:18 GMT",
        ] {
            assert_eq!(http_date(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn age_counts_the_largest_initial_age_and_residence() {
        let at = |s: &str| httpdate::parse_http_date(s).unwrap();

        let h = headers(&[("date", "Mon, 23 Nov 2026 11:59:50 GMT"), ("age", "30, 99")]);
        let age = current_age(
            &h,
            at("Mon, 23 Nov 2026 11:59:58 GMT"),
            at(DATE_NOW),
            at("Mon, 23 Nov 2026 12:01:00 GMT"),
        );
        // Age 30 + 2 s in flight = 32 > apparent 10; then 60 s resident.
        assert_eq!(age.as_secs(), 92);
        let garbage = headers(&[("age", "-5")]);
        assert_eq!(
            current_age(&garbage, at(DATE_NOW), at(DATE_NOW), at(DATE_NOW)),
            Duration::ZERO
        );
    }
}
