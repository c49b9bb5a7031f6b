//! `Cache-Control` (RFC 9111 §5.2), read from requests and responses.

use std::time::Duration;

use http::HeaderMap;
use http::header::CACHE_CONTROL;

/// The largest delta-seconds kept: RFC 9111 §1.2.2 has a value that does not fit be taken as
/// 2^31 seconds.
const MAX_DELTA: u64 = 1 << 31;

/// A directive whose value may be a duration: absent, present with a usable value, or
/// present but unusable (repeated with another value, or not delta-seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delta {
    /// Not present.
    #[default]
    Absent,
    /// Present, with this value.
    Seconds(Duration),
    /// Present without a value (`max-stale` alone means "any staleness").
    Bare,
    /// Present, but repeated with different values or not delta-seconds. RFC 9111 §4.2.1
    /// lets a cache take the first or treat the response as stale; parapet treats it as
    /// stale: freshness information it cannot trust is no freshness.
    Invalid,
}

impl Delta {
    /// The value, when present and usable.
    pub fn seconds(self) -> Option<Duration> {
        match self {
            Self::Seconds(d) => Some(d),
            _ => None,
        }
    }

    /// True unless absent.
    pub fn is_present(self) -> bool {
        self != Self::Absent
    }

    fn merge(self, next: Delta) -> Delta {
        match (self, next) {
            (Self::Absent, next) => next,
            (same, next) if same == next => same,
            _ => Self::Invalid,
        }
    }
}

/// A directive that may name header fields (`no-cache="Set-Cookie"`, `private="X"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fields {
    /// Not present.
    #[default]
    Absent,
    /// Present without field names: applies to the whole response.
    All,
    /// Present with these field names (lower-cased): applies to those fields only.
    Named(Vec<String>),
}

impl Fields {
    /// True unless absent.
    pub fn is_present(&self) -> bool {
        *self != Self::Absent
    }

    fn merge(&mut self, next: Fields) {
        *self = match (std::mem::take(self), next) {
            (Self::All, _) | (_, Self::All) => Self::All,
            (Self::Absent, next) => next,
            (Self::Named(mut a), Self::Named(b)) => {
                a.extend(b);
                Self::Named(a)
            }
            (named, Self::Absent) => named,
        };
    }
}

/// The directives of one message's `Cache-Control` field lines, request and response
/// directives alike (a directive that does not apply to the message is simply ignored by
/// the policy). Unknown directives are ignored (RFC 9111 §5.2.3); nothing here fails.
///
/// ```
/// use http::HeaderMap;
/// use parapet_cache::policy::CacheControl;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cache-control", "public, max-age=60, no-cache=\"Set-Cookie\"".parse().unwrap());
/// let cc = CacheControl::from_headers(&headers);
/// assert!(cc.public);
/// assert_eq!(cc.max_age.seconds().unwrap().as_secs(), 60);
/// assert!(cc.no_cache.is_present());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheControl {
    /// `max-age` (request and response).
    pub max_age: Delta,
    /// `s-maxage` (response, shared caches).
    pub s_maxage: Delta,
    /// `max-stale` (request).
    pub max_stale: Delta,
    /// `min-fresh` (request).
    pub min_fresh: Delta,
    /// `stale-while-revalidate` (RFC 5861, response).
    pub stale_while_revalidate: Delta,
    /// `stale-if-error` (RFC 5861, request and response).
    pub stale_if_error: Delta,
    /// `no-cache`: on a response, store but revalidate before every use (or only the named
    /// fields); on a request, do not answer from the cache without validation.
    pub no_cache: Fields,
    /// `private`: a shared cache must not store the response (or the named fields).
    pub private: Fields,
    /// `no-store`.
    pub no_store: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `only-if-cached` (request).
    pub only_if_cached: bool,
    /// `must-understand`.
    pub must_understand: bool,
}

impl CacheControl {
    /// The directives of every `Cache-Control` field line of `headers`, in order (several
    /// lines form one list, RFC 9110 §5.3). A line that is not visible ASCII cannot be
    /// trusted to say what it means (it might have said `private`): it counts as `no-store`
    /// and `private`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut cc = Self::default();
        for line in headers.get_all(CACHE_CONTROL) {
            match line.to_str() {
                Ok(line) => cc.add_line(line),
                // `private` too: `must-understand` sets `no-store` aside, never this.
                Err(_) => {
                    cc.no_store = true;
                    cc.private = Fields::All;
                }
            }
        }
        cc
    }

    /// The directives of one field value.
    pub fn parse(value: &str) -> Self {
        let mut cc = Self::default();
        cc.add_line(value);
        cc
    }

    fn add_line(&mut self, line: &str) {
        for element in split_elements(line) {
            let (name, value) = match element.split_once('=') {
                Some((name, value)) => (name.trim(), Some(unquote(value.trim()))),
                None => (element.trim(), None),
            };
            if name.is_empty() {
                continue;
            }
            self.add(&name.to_ascii_lowercase(), value.as_deref());
        }
    }

    fn add(&mut self, name: &str, value: Option<&str>) {
        let delta = || match value {
            None => Delta::Bare,
            Some(v) => parse_delta(v),
        };
        match name {
            "max-age" => self.max_age = self.max_age.merge(delta()),
            "s-maxage" => self.s_maxage = self.s_maxage.merge(delta()),
            "max-stale" => self.max_stale = self.max_stale.merge(delta()),
            "min-fresh" => self.min_fresh = self.min_fresh.merge(delta()),
            "stale-while-revalidate" => {
                self.stale_while_revalidate = self.stale_while_revalidate.merge(delta());
            }
            "stale-if-error" => self.stale_if_error = self.stale_if_error.merge(delta()),
            "no-cache" => self.no_cache.merge(fields(value)),
            "private" => self.private.merge(fields(value)),
            "no-store" => self.no_store = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "no-transform" => self.no_transform = true,
            "immutable" => self.immutable = true,
            "only-if-cached" => self.only_if_cached = true,
            "must-understand" => self.must_understand = true,
            _ => {}
        }
    }
}

/// delta-seconds = 1*DIGIT (RFC 9111 §1.2.2); too large is 2^31; anything else is invalid.
fn parse_delta(value: &str) -> Delta {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Delta::Invalid;
    }
    let seconds = value.parse::<u64>().unwrap_or(MAX_DELTA).min(MAX_DELTA);
    Delta::Seconds(Duration::from_secs(seconds))
}

/// The field names of `no-cache="a, b"` / `private="a"`, lower-cased; none means all.
fn fields(value: Option<&str>) -> Fields {
    match value {
        None => Fields::All,
        Some(list) => {
            let names: Vec<String> = list
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                Fields::All
            } else {
                Fields::Named(names)
            }
        }
    }
}

/// Splits a field value on commas outside quoted-strings.
fn split_elements(line: &str) -> Vec<&str> {
    let mut elements = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in line.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                elements.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    elements.push(&line[start..]);
    elements
}

/// The content of a quoted-string (backslash escapes removed), or the token as is.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"') else {
        return value.to_owned();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_values_and_case() {
        let cc = CacheControl::parse(
            r#"Public, MAX-AGE=10, s-maxage="20", no-cache="Set-Cookie, X-A", must-revalidate, unknown=1"#,
        );
        assert!(cc.public && cc.must_revalidate);
        assert_eq!(cc.max_age, Delta::Seconds(Duration::from_secs(10)));
        assert_eq!(cc.s_maxage, Delta::Seconds(Duration::from_secs(20)));
        assert_eq!(
            cc.no_cache,
            Fields::Named(vec!["set-cookie".into(), "x-a".into()])
        );
        assert!(!cc.private.is_present());
    }

    #[test]
    fn invalid_duplicated_and_huge_values() {
        for bad in [
            "max-age=-1",
            "max-age=foo",
            "max-age=1.5",
            "max-age=",
            "max-age=10, max-age=20",
        ] {
            assert_eq!(CacheControl::parse(bad).max_age, Delta::Invalid, "{bad}");
        }
        assert_eq!(
            CacheControl::parse("max-age=10, max-age=10").max_age,
            Delta::Seconds(Duration::from_secs(10)),
            "the same value twice is no conflict"
        );
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999999").max_age,
            Delta::Seconds(Duration::from_secs(1 << 31))
        );
        assert_eq!(CacheControl::parse("max-stale").max_stale, Delta::Bare);
    }

    #[test]
    fn several_lines_form_one_list() {
        let mut headers = HeaderMap::new();
        headers.append(CACHE_CONTROL, "public".parse().unwrap());
        headers.append(CACHE_CONTROL, "max-age=5".parse().unwrap());
        headers.append(
            CACHE_CONTROL,
            http::HeaderValue::from_bytes(b"\xffprivate").unwrap(),
        );
        let cc = CacheControl::from_headers(&headers);
        assert!(cc.public);
        assert_eq!(cc.max_age.seconds(), Some(Duration::from_secs(5)));
        assert!(cc.no_store, "a line that cannot be read forbids storing");
    }

    #[test]
    fn private_without_names_wins_over_named() {
        let cc = CacheControl::parse(r#"private="x", private"#);
        assert_eq!(cc.private, Fields::All);
    }
}
