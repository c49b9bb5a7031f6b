//! How the query string enters the cache key.

use std::sync::Arc;

/// How the query string of a request enters its cache key.
///
/// The default, [`QueryKey::AsIs`], keys on the exact query: two URLs that differ only in
/// parameter order are two entries, which is never wrong. The others trade that for a
/// higher hit rate where the application allows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryKey {
    /// The query exactly as sent (default).
    #[default]
    AsIs,
    /// The parameters sorted by name then value, so `?b=2&a=1` and `?a=1&b=2` share an entry.
    Sorted,
    /// Only these parameters (sorted); any others are left out of the key. Use it when the
    /// origin ignores every other parameter, or tracking parameters would split the cache.
    /// A parameter whose name is not plain (letters, digits, `-`, `_`) or matches an allowed
    /// one in another case stays in the key: an origin may decode it into an allowed name.
    Allow(Arc<[String]>),
    /// Every parameter but these (sorted); only exact, plain names are left out.
    Deny(Arc<[String]>),
}

impl QueryKey {
    /// Only the named parameters enter the key.
    pub fn allow<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Allow(names.into_iter().map(Into::into).collect())
    }

    /// Every parameter but the named ones enters the key.
    pub fn deny<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Deny(names.into_iter().map(Into::into).collect())
    }

    /// The query as it enters the key.
    pub(crate) fn normalise<'a>(&self, query: &'a str) -> std::borrow::Cow<'a, str> {
        // A name the origin may read as another (`%61`, `a.b` and `a[]` to PHP, `A` to
        // case-insensitive frameworks) is never left out: only plain names are.
        let plain = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let left_out: &dyn Fn(&str) -> bool = match self {
            Self::AsIs => return query.into(),
            Self::Sorted => &|_| false,
            Self::Allow(names) => {
                &|name| plain(name) && !names.iter().any(|n| n.eq_ignore_ascii_case(name))
            }
            Self::Deny(names) => &|name| plain(name) && names.iter().any(|n| n == name),
        };
        let name = |pair: &'a str| pair.split_once('=').map_or(pair, |(name, _)| name);
        // Some frameworks also split on `;`: a pair is left out only when every
        // `;`-separated part of it is, so that `utm=x;callback=evil` (with `utm` denied)
        // or `a=1;callback=evil` (with `a` allowed) stays in the key whole, whichever way
        // the origin reads it.
        let mut pairs: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let mut parts = pair.split(';').filter(|part| !part.is_empty()).peekable();
                parts.peek().is_none() || parts.any(|part| !left_out(name(part)))
            })
            .collect();
        pairs.sort_unstable();
        pairs.join("&").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_keeps_what_it_says() {
        let q = "utm=x&b=2&a=1&&a=0";
        assert_eq!(QueryKey::AsIs.normalise(q), q);
        assert_eq!(QueryKey::Sorted.normalise(q), "a=0&a=1&b=2&utm=x");
        assert_eq!(QueryKey::allow(["a"]).normalise(q), "a=0&a=1");
        assert_eq!(QueryKey::deny(["utm"]).normalise(q), "a=0&a=1&b=2");
    }

    #[test]
    fn semicolons_cannot_smuggle_a_parameter_past_the_key() {
        let deny = QueryKey::deny(["utm"]);
        assert_eq!(deny.normalise("utm=x;callback=evil"), "utm=x;callback=evil");
        assert_eq!(deny.normalise("utm=x;utm=y&a=1"), "a=1");
        let allow = QueryKey::allow(["a"]);
        assert_eq!(allow.normalise("a=1;callback=evil"), "a=1;callback=evil");
        assert_eq!(allow.normalise("x=1;y=2&a=1"), "a=1");
        assert_eq!(
            QueryKey::Sorted.normalise("b=1&;"),
            ";&b=1",
            "nothing dropped"
        );
    }

    #[test]
    fn names_an_origin_may_decode_are_never_left_out() {
        let allow = QueryKey::allow(["a"]);
        for smuggled in ["%61=evil", "A=evil", "a.b=evil", "a[]=evil", "a+b=evil"] {
            let query = format!("a=1&{smuggled}");
            assert_ne!(allow.normalise(&query), "a=1", "{smuggled}");
        }
        assert_eq!(allow.normalise("a=1&utm_source=x"), "a=1");
        let deny = QueryKey::deny(["utm"]);
        assert_eq!(deny.normalise("utm=x&UTM=y"), "UTM=y");
    }
}
