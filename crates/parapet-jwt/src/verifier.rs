//! Checking a token: one pass over the header, jsonwebtoken's signature check, one
//! borrowed pass over the claims.
//!
//! `jsonwebtoken::decode` reads the header twice and the claims twice (once into its own
//! validation struct, once into the caller's type). The guard needs `iat`, `sub` and `jti`
//! besides what jsonwebtoken validates, so it reads the header once (only `alg`, `kid` and
//! `crit`), verifies the signature with `jsonwebtoken::crypto::verify` against the key the
//! `kid` chose, and reads every registered claim it needs in one borrowed pass. The
//! handler's own claim type is read later, once, by [`Claims<T>`](crate::Claims).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::keys::{KeyRing, MAX_KID_BYTES};
use crate::{JwtRejection, VerifiedToken};

/// The longest `iss`, `sub` or `jti` accepted.
pub(crate) const MAX_CLAIM_BYTES: usize = 512;

/// The checks on the claims, fixed when the guard is built.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) issuers: Option<Box<[String]>>,
    pub(crate) audiences: Option<Box<[String]>>,
    /// Seconds.
    pub(crate) leeway: f64,
    /// Seconds a token may live after `iat` (set when revocations are checked).
    pub(crate) max_age: Option<f64>,
    pub(crate) require_jti: bool,
}

/// Why a token did not pass.
#[derive(Debug, PartialEq)]
pub(crate) enum Failure {
    Reject(JwtRejection),
    /// No key has the token's `kid` (a fetched key set may be out of date).
    UnknownKey,
}

impl From<JwtRejection> for Failure {
    fn from(rejection: JwtRejection) -> Self {
        Self::Reject(rejection)
    }
}

fn invalid(why: &'static str) -> Failure {
    Failure::Reject(JwtRejection::InvalidToken(why))
}

#[derive(Deserialize)]
struct Head<'a> {
    alg: Algorithm,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    /// Extensions the recipient must understand (RFC 7515 §4.1.11): we understand none,
    /// so the parameter's presence alone refuses the token, `"crit": null` included.
    #[serde(default, deserialize_with = "member")]
    crit: bool,
}

/// True for a member that is there, whatever its value (`null` included).
fn member<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer)?;
    Ok(true)
}

/// A member that, when there, must hold a value of its type: `"exp": null` is malformed,
/// not absent (RFC 7519 §4.1 gives each registered claim a type, and null is none of them).
fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// RFC 7515 §4 and RFC 7519 §7.2: the header and the claims are JSON objects. serde would
/// read a struct from an array too, by position (`["HS256"]`).
fn is_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(default, deserialize_with = "not_null")]
    exp: Option<f64>,
    #[serde(default, deserialize_with = "not_null")]
    nbf: Option<f64>,
    #[serde(default, deserialize_with = "not_null")]
    iat: Option<f64>,
    #[serde(borrow, default, deserialize_with = "not_null")]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "not_null")]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "not_null")]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "not_null")]
    aud: Option<Audience<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

/// The kid a token names, for the key lookup that may precede a verification.
#[cfg(feature = "jwks-fetch")]
pub(crate) fn kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let head: Head<'_> = serde_json::from_slice(&bytes).ok()?;
    head.kid.map(Cow::into_owned)
}

/// Checks `token` against `ring` and `rules` at `now` (seconds since the Unix epoch).
pub(crate) fn verify(
    token: &str,
    ring: &KeyRing,
    rules: &Rules,
    now: f64,
) -> Result<VerifiedToken, Failure> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a JWS in compact form"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| invalid("the header is not base64url"))?;
    if !is_object(&header_bytes) {
        return Err(invalid("unsupported or malformed header"));
    }
    let head: Head<'_> = serde_json::from_slice(&header_bytes)
        .map_err(|_| invalid("unsupported or malformed header"))?;
    if head.crit {
        return Err(invalid("critical header extensions are not supported"));
    }
    let kid = head.kid.as_deref();
    if kid.is_some_and(|k| k.len() > MAX_KID_BYTES) {
        return Err(invalid("unknown key"));
    }
    let Some(entry) = ring.find(kid) else {
        return Err(Failure::UnknownKey);
    };
    // The key's pinned algorithm decides; the token's `alg` only has to agree.
    if head.alg != entry.alg {
        return Err(invalid("the algorithm is not the key's"));
    }
    let message = &token[..header.len() + 1 + payload.len()];
    match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &entry.key, entry.alg) {
        Ok(true) => {}
        _ => return Err(invalid("bad signature")),
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| invalid("the claims are not base64url"))?;
    if !is_object(&payload) {
        return Err(invalid("malformed claims"));
    }
    let claims: Registered<'_> =
        serde_json::from_slice(&payload).map_err(|_| invalid("malformed claims"))?;
    let (exp, iat) = check_times(&claims, rules, now)?;
    check_issuer(claims.iss.as_deref(), rules)?;
    check_audience(claims.aud.as_ref(), rules)?;
    // Empty strings name nothing that could be revoked: they count as absent.
    let (iss, sub, jti) = (
        present(claims.iss),
        present(claims.sub),
        present(claims.jti),
    );
    // Bounded, so the revocation sets are bounded in bytes, not only in entries.
    if [&iss, &sub, &jti]
        .iter()
        .any(|s| s.as_ref().is_some_and(|s| s.len() > MAX_CLAIM_BYTES))
    {
        return Err(invalid("iss, sub or jti is longer than 512 bytes"));
    }
    if rules.require_jti && jti.is_none() {
        return Err(invalid("the token has no jti"));
    }
    let owned = |s: Option<Cow<'_, str>>| s.map(|s| Box::<str>::from(s.as_ref()));
    let (iss, sub, jti) = (owned(iss), owned(sub), owned(jti));
    Ok(VerifiedToken {
        payload: payload.into(),
        iss,
        sub,
        jti,
        iat,
        exp,
    })
}

/// `s`, unless it is empty.
fn present(s: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    s.filter(|s| !s.is_empty())
}

/// `exp` and `iat` required, numbers; `nbf` if present; all with the leeway.
fn check_times(claims: &Registered<'_>, rules: &Rules, now: f64) -> Result<(f64, f64), Failure> {
    let valid = |t: f64| t.is_finite() && t >= 0.0;
    let exp = claims.exp.ok_or_else(|| invalid("the token has no exp"))?;
    let iat = claims.iat.ok_or_else(|| invalid("the token has no iat"))?;
    if !valid(exp) || !valid(iat) || !claims.nbf.is_none_or(valid) {
        return Err(invalid("a time claim is out of range"));
    }
    if exp + rules.leeway < now {
        return Err(invalid("the token expired"));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + rules.leeway) {
        return Err(invalid("the token is not valid yet"));
    }
    if iat > now + rules.leeway {
        return Err(invalid("the token was issued in the future"));
    }
    if rules
        .max_age
        .is_some_and(|max_age| now - iat > max_age + rules.leeway)
    {
        return Err(invalid("the token is older than the maximum token age"));
    }
    Ok((exp, iat))
}

fn check_issuer(iss: Option<&str>, rules: &Rules) -> Result<(), Failure> {
    match (&rules.issuers, iss) {
        (None, _) => Ok(()),
        (Some(allowed), Some(iss)) if allowed.iter().any(|a| a == iss) => Ok(()),
        (Some(_), _) => Err(invalid("wrong issuer")),
    }
}

/// RFC 7519 §4.1.3: a token with an `aud` that does not name us MUST be rejected; so must
/// one with an `aud` when we expect none.
fn check_audience(aud: Option<&Audience<'_>>, rules: &Rules) -> Result<(), Failure> {
    let names_us = |a: &str| {
        rules
            .audiences
            .as_ref()
            .is_some_and(|ours| ours.iter().any(|o| o == a))
    };
    let ok = match aud {
        None => rules.audiences.is_none(),
        Some(Audience::One(a)) => names_us(a),
        Some(Audience::Many(list)) => list.iter().any(|a| names_us(a)),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid("wrong audience"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ring() -> KeyRing {
        let mut ring = KeyRing::default();
        ring.add(None, Algorithm::HS256, DecodingKey::from_secret(SECRET))
            .unwrap();
        ring
    }

    fn rules() -> Rules {
        Rules {
            issuers: None,
            audiences: None,
            leeway: 0.0,
            max_age: Some(3600.0),
            require_jti: false,
        }
    }

    fn sign(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn check(token: &str, rules: &Rules) -> Result<VerifiedToken, Failure> {
        verify(token, &ring(), rules, 1_000_000.0)
    }

    /// A token of this raw header and payload JSON, correctly signed with HS256.
    fn sign_raw(header: &str, payload: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{sig}")
    }

    #[test]
    fn header_and_claims_must_be_objects_and_null_is_not_absent() {
        let claims = r#"{"iat":999000,"exp":1000900,"sub":"alice"}"#;
        assert!(check(&sign_raw(r#"{"alg":"HS256"}"#, claims), &rules()).is_ok());
        assert!(check(&sign_raw(r#" {"alg":"HS256"}"#, claims), &rules()).is_ok());
        for (header, payload) in [
            // RFC 7515 §4 / RFC 7519 §7.2: objects, not arrays read by position.
            (r#"["HS256"]"#, claims),
            (
                r#"{"alg":"HS256"}"#,
                r#"[1000900,null,999000,null,"admin"]"#,
            ),
            // RFC 7515 §4.1.11: `crit` present at all is an extension we do not know.
            (r#"{"alg":"HS256","crit":null}"#, claims),
            // A registered claim that is there must have its type.
            (
                r#"{"alg":"HS256"}"#,
                r#"{"iat":999000,"exp":1000900,"aud":null}"#,
            ),
            (r#"{"alg":"HS256"}"#, r#"{"iat":999000,"exp":null}"#),
            (
                r#"{"alg":"HS256"}"#,
                r#"{"iat":999000,"exp":1000900,"sub":null}"#,
            ),
        ] {
            assert!(
                matches!(
                    check(&sign_raw(header, payload), &rules()),
                    Err(Failure::Reject(JwtRejection::InvalidToken(_)))
                ),
                "{header} {payload}"
            );
        }
    }

    #[test]
    fn a_good_token_passes_with_its_claims() {
        let token = sign(json!({"sub": "alice", "jti": "t1", "iat": 999_000, "exp": 1_000_900}));
        let verified = check(&token, &rules()).unwrap();
        assert_eq!(verified.subject(), Some("alice"));
        assert_eq!(verified.token_id(), Some("t1"));
        assert_eq!(verified.issued_at(), 999_000.0);
    }

    #[test]
    fn times_are_enforced() {
        let r = rules();
        for (claims, why) in [
            (json!({"iat": 999_000}), "the token has no exp"),
            (json!({"exp": 1_000_900}), "the token has no iat"),
            (json!({"iat": 999_000, "exp": 999_999}), "the token expired"),
            (
                json!({"iat": 999_000, "exp": "1000900"}),
                "malformed claims",
            ),
            (
                json!({"iat": 999_000, "exp": 1_000_900, "nbf": 1_000_001}),
                "the token is not valid yet",
            ),
            (
                json!({"iat": 1_000_001, "exp": 1_000_900}),
                "the token was issued in the future",
            ),
            (
                json!({"iat": 990_000, "exp": 1_000_900}),
                "the token is older than the maximum token age",
            ),
            (
                json!({"iat": -1, "exp": 1_000_900}),
                "a time claim is out of range",
            ),
        ] {
            assert_eq!(
                check(&sign(claims.clone()), &r).map(|_| ()),
                Err(invalid(why)),
                "{claims}"
            );
        }
        // The leeway forgives a little.
        let lenient = Rules {
            leeway: 2.0,
            ..rules()
        };
        let token = sign(json!({"iat": 999_000, "exp": 999_999}));
        assert!(check(&token, &lenient).is_ok());
    }

    #[test]
    fn issuer_and_audience() {
        let r = Rules {
            issuers: Some(vec!["me".to_owned()].into()),
            audiences: Some(vec!["api".to_owned()].into()),
            ..rules()
        };
        let base = |extra: serde_json::Value| {
            let mut claims = json!({"iat": 999_000, "exp": 1_000_900});
            claims
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            sign(claims)
        };
        assert!(check(&base(json!({"iss": "me", "aud": "api"})), &r).is_ok());
        assert!(check(&base(json!({"iss": "me", "aud": ["x", "api"]})), &r).is_ok());
        assert_eq!(
            check(&base(json!({"iss": "you", "aud": "api"})), &r).map(|_| ()),
            Err(invalid("wrong issuer"))
        );
        assert_eq!(
            check(&base(json!({"aud": "api"})), &r).map(|_| ()),
            Err(invalid("wrong issuer"))
        );
        assert_eq!(
            check(&base(json!({"iss": "me", "aud": "web"})), &r).map(|_| ()),
            Err(invalid("wrong audience"))
        );
        // An audience we do not expect at all is refused too.
        assert_eq!(
            check(&base(json!({"aud": "api"})), &rules()).map(|_| ()),
            Err(invalid("wrong audience"))
        );
    }

    #[test]
    fn forged_and_malformed_tokens_fail() {
        let good = sign(json!({"iat": 999_000, "exp": 1_000_900}));
        let (head, rest) = good.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let crit_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","crit":["b64"],"b64":false}"#);
        let hs512_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512"}"#);
        for token in [
            format!("{none_header}.{}", rest.rsplit_once('.').unwrap().0) + ".",
            format!("{crit_header}.{rest}"),
            format!("{hs512_header}.{rest}"),
            format!("{head}.{rest}x"),
            format!("{head}!.{rest}"),
            good.replace('.', ".."),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
        ] {
            assert!(
                matches!(
                    check(&token, &rules()),
                    Err(Failure::Reject(JwtRejection::InvalidToken(_)))
                ),
                "{token}"
            );
        }
        // Duplicate claims cannot smuggle a second subject.
        let dup = format!(
            "{head}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"iat":999000,"exp":1000900,"sub":"a","sub":"admin"}"#)
        );
        let sig = jsonwebtoken::crypto::sign(
            dup.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        assert!(check(&format!("{dup}.{sig}"), &rules()).is_err());
        // Deep JSON overflows no stack: the guard skips it without recursion, and reading it
        // into a value stops at serde_json's depth limit (a 401 from the extractor).
        let deep = format!(
            "{{\"iat\":999000,\"exp\":1000900,\"x\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let deep = format!("{head}.{}", URL_SAFE_NO_PAD.encode(deep));
        let sig = jsonwebtoken::crypto::sign(
            deep.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        let verified = check(&format!("{deep}.{sig}"), &rules()).unwrap();
        assert!(verified.claims::<serde_json::Value>().is_err());
    }

    #[test]
    fn empty_and_oversized_names() {
        let strict = Rules {
            require_jti: true,
            ..rules()
        };
        let empty = sign(json!({"iat": 999_000, "exp": 1_000_900, "jti": "", "sub": ""}));
        assert_eq!(
            check(&empty, &strict).map(|_| ()),
            Err(invalid("the token has no jti"))
        );
        let verified = check(&empty, &rules()).unwrap();
        assert_eq!((verified.subject(), verified.token_id()), (None, None));
        let long = sign(json!({"iat": 999_000, "exp": 1_000_900, "sub": "x".repeat(513)}));
        assert!(check(&long, &rules()).is_err());
    }

    #[test]
    fn required_jti() {
        let strict = Rules {
            require_jti: true,
            ..rules()
        };
        let token = sign(json!({"iat": 999_000, "exp": 1_000_900}));
        assert_eq!(
            check(&token, &strict).map(|_| ()),
            Err(invalid("the token has no jti"))
        );
    }
}
