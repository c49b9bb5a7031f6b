//! Where the guard reads the token from.

use std::borrow::Cow;

use cookie::Cookie;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::JwtRejection;

/// Where the bearer token is read: the `Authorization: Bearer` field (RFC 6750 §2.1, the
/// default), a cookie, or either. A request that carries more than one credential (two
/// `Authorization` fields, two cookies of the name, or a header and a cookie) is refused
/// with 400 `invalid_request` (RFC 6750 §2: a client MUST NOT use more than one method).
/// The query-string method (RFC 6750 §2.3) is not supported: URLs get logged.
///
/// A token in a cookie is sent by browsers on cross-site requests too: guard state-changing
/// routes against CSRF (`SameSite` cookies). Name the cookie `__Host-…` so that a sibling
/// subdomain cannot plant a second one (which would make every request a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    header: bool,
    cookie: Option<String>,
}

impl TokenSource {
    /// `Authorization: Bearer <token>`.
    pub fn header() -> Self {
        Self {
            header: true,
            cookie: None,
        }
    }

    /// The cookie `name` only.
    pub fn cookie(name: impl Into<String>) -> Self {
        Self {
            header: false,
            cookie: Some(name.into()),
        }
    }

    /// The header or the cookie `name`, not both.
    pub fn header_or_cookie(name: impl Into<String>) -> Self {
        Self {
            header: true,
            cookie: Some(name.into()),
        }
    }

    /// The token of the request, if it carries one; a 400 when its credentials are
    /// malformed. Nothing here allocates unless the token sits in a cookie.
    pub(crate) fn extract<'h>(
        &self,
        headers: &'h HeaderMap,
        max_bytes: usize,
    ) -> Result<Option<Cow<'h, str>>, JwtRejection> {
        let from_header = if self.header {
            bearer(headers, max_bytes)?
        } else {
            None
        };
        let from_cookie = match &self.cookie {
            Some(name) => cookie(headers, name, max_bytes)?,
            None => None,
        };
        match (from_header, from_cookie) {
            (Some(_), Some(_)) => Err(JwtRejection::InvalidRequest(
                "the token is sent both in a header and in a cookie",
            )),
            (Some(token), None) => Ok(Some(Cow::Borrowed(token))),
            (None, cookie) => Ok(cookie.map(Cow::Owned)),
        }
    }
}

impl Default for TokenSource {
    fn default() -> Self {
        Self::header()
    }
}

/// The token of `Authorization: Bearer <token>`. Another scheme is no bearer credential.
fn bearer(headers: &HeaderMap, max_bytes: usize) -> Result<Option<&str>, JwtRejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(JwtRejection::InvalidRequest(
            "more than one Authorization field",
        ));
    }
    let value = value.as_bytes();
    // The scheme is case-insensitive (RFC 9110 §11.1).
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let rest = &value[6..];
    if !rest.is_empty() && rest[0] != b' ' {
        return Ok(None);
    }
    let token = trim_leading_spaces(rest);
    check_token(token, max_bytes)?;
    // `check_token` allowed ASCII only.
    Ok(std::str::from_utf8(token).ok())
}

fn trim_leading_spaces(mut bytes: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

/// The value of the one cookie `name`.
fn cookie(
    headers: &HeaderMap,
    name: &str,
    max_bytes: usize,
) -> Result<Option<String>, JwtRejection> {
    let mut found: Option<String> = None;
    // A byte that is not ASCII in another cookie does not hide the token.
    for header in parapet_core::cookie_lines(headers) {
        for cookie in Cookie::split_parse(header).filter_map(Result::ok) {
            if cookie.name() != name {
                continue;
            }
            if found.is_some() {
                return Err(JwtRejection::InvalidRequest("two token cookies"));
            }
            check_token(cookie.value().as_bytes(), max_bytes)?;
            found = Some(cookie.value().to_owned());
        }
    }
    Ok(found)
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`,
/// at most `max_bytes` long.
fn check_token(token: &[u8], max_bytes: usize) -> Result<(), JwtRejection> {
    if token.is_empty() {
        return Err(JwtRejection::InvalidRequest("the bearer token is empty"));
    }
    if token.len() > max_bytes {
        return Err(JwtRejection::InvalidRequest("the bearer token is too long"));
    }
    let body = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let valid = body > 0
        && token[..body].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if valid {
        Ok(())
    } else {
        Err(JwtRejection::InvalidRequest(
            "the bearer token holds characters RFC 6750 does not allow",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_header() {
        let source = TokenSource::header();
        let get = |pairs| {
            source
                .extract(&headers(pairs), 64)
                .map(|t| t.map(Cow::into_owned))
        };
        assert_eq!(
            get(&[("authorization", "Bearer a.b.c")]),
            Ok(Some("a.b.c".into()))
        );
        assert_eq!(
            get(&[("authorization", "bEaReR   a.b.c")]),
            Ok(Some("a.b.c".into()))
        );
        assert_eq!(get(&[("authorization", "Basic dXNlcjpwYXNz")]), Ok(None));
        assert_eq!(get(&[("authorization", "Bearerish a.b.c")]), Ok(None));
        assert_eq!(get(&[]), Ok(None));
        for bad in [
            &[("authorization", "Bearer")][..],
            &[("authorization", "Bearer ")],
            &[("authorization", "Bearer a b")],
            &[("authorization", "Bearer a\"b")],
            &[("authorization", "Bearer ===")],
            &[
                ("authorization", "Bearer a.b.c"),
                ("authorization", "Bearer a.b.c"),
            ],
        ] {
            assert!(
                matches!(get(bad), Err(JwtRejection::InvalidRequest(_))),
                "{bad:?}"
            );
        }
        let long = format!("Bearer {}", "a".repeat(65));
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, HeaderValue::from_str(&long).unwrap());
        assert!(source.extract(&map, 64).is_err());
    }

    #[test]
    fn cookie_and_both() {
        let source = TokenSource::header_or_cookie("token");
        let get = |pairs| {
            source
                .extract(&headers(pairs), 64)
                .map(|t| t.map(Cow::into_owned))
        };
        assert_eq!(
            get(&[("cookie", "a=1; token=x.y.z")]),
            Ok(Some("x.y.z".into()))
        );
        assert!(get(&[("cookie", "token=x.y.z; token=x.y.z")]).is_err());
        assert!(get(&[("cookie", "token=x.y.z"), ("authorization", "Bearer x.y.z")]).is_err());
        assert_eq!(get(&[("cookie", "other=x.y.z")]), Ok(None));
        let only_cookie = TokenSource::cookie("token");
        assert_eq!(
            only_cookie
                .extract(&headers(&[("authorization", "Bearer x.y.z")]), 64)
                .unwrap(),
            None
        );
    }
}
