//! Key namespacing: `{prefix}:{kind}:{tag}:{suffix}`.
//!
//! The prefix and kind come from configuration and are validated; the only part that comes
//! from a request is hashed into a [`HashTag`], so a user can neither pick a key in another
//! namespace nor make two subjects share one, and secrets (API keys, session ids) are never
//! stored in clear. The tag is wrapped in `{…}` so every key of one subject falls in one Redis
//! Cluster slot and one Lua script may touch them all.
//!
//! Without a [`KeySecret`] the tag is a plain SHA-256: an API key or session id cannot be
//! read back from it, but values from a small space can be found by trying them all (every
//! IPv4 address hashes in minutes, so a Redis dump would list client addresses). With a
//! secret the tag is an HMAC-SHA-256 (RFC 2104) under it, which nobody without the secret
//! can recompute. Every instance sharing a Redis must use the same secret.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The first part of every key parapet writes (default `parapet`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(Arc<str>);

impl KeyPrefix {
    /// A prefix of 1 to 64 characters from `A-Z a-z 0-9 _ - .`.
    ///
    /// Braces are refused because they would move the Cluster hash tag; `:` because it
    /// separates the parts.
    pub fn new(prefix: impl Into<String>) -> Result<Self, StoreError> {
        let prefix = prefix.into();
        if is_key_word(&prefix) {
            Ok(Self(prefix.into()))
        } else {
            Err(StoreError::InvalidConfig(format!(
                "key prefix must be 1 to 64 characters of A-Z a-z 0-9 _ - . (got {} characters)",
                prefix.chars().count()
            )))
        }
    }

    /// The prefix as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for KeyPrefix {
    fn default() -> Self {
        Self("parapet".into())
    }
}

/// True for 1 to 64 characters of `A-Z a-z 0-9 _ - .`: the names allowed in keys.
pub fn is_key_word(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A 128-bit SHA-256 digest of user-controlled bytes, written as `{32 hex digits}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashTag([u8; 16]);

impl HashTag {
    /// The plain SHA-256 tag of `bytes`: the same on every instance and every run.
    pub fn of(bytes: &[u8]) -> Self {
        Self::truncate(&Sha256::digest(bytes))
    }

    fn truncate(digest: &[u8]) -> Self {
        let mut tag = [0; 16];
        tag.copy_from_slice(&digest[..16]);
        Self(tag)
    }

    /// A tag of 16 bytes digested elsewhere (read back from a store, say).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes of the tag.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// 32 lowercase hex digits, without the braces of a key.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(32);
        self.push_hex(&mut out);
        out
    }
}

/// A per-deployment secret that makes key tags keyed hashes (HMAC-SHA-256).
///
/// At least 16 bytes; 32 random bytes are the recommendation (`openssl rand -base64 32`).
/// `Debug` never shows it.
#[derive(Clone)]
pub struct KeySecret(Hmac<Sha256>);

impl KeySecret {
    /// A secret from its bytes (at least 16).
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, StoreError> {
        let secret = secret.as_ref();
        if secret.len() < 16 {
            return Err(StoreError::InvalidConfig(
                "a key secret must be at least 16 bytes".into(),
            ));
        }
        Hmac::<Sha256>::new_from_slice(secret)
            .map(Self)
            .map_err(|_| StoreError::InvalidConfig("key secret rejected by HMAC".into()))
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(***)")
    }
}

/// Where a store's keys live: a [`KeyPrefix`] and, optionally, a [`KeySecret`] that
/// makes the hashed part of each key a keyed hash.
///
/// ```
/// use parapet_core::{KeyPrefix, KeySecret, Keyspace};
///
/// let plain = Keyspace::new(KeyPrefix::default());
/// let keyed = plain.clone().with_secret(KeySecret::new("0123456789abcdef0123")?);
/// let (a, b) = (plain.tag(b"192.0.2.1"), keyed.tag(b"192.0.2.1"));
/// assert_ne!(a, b);
/// assert!(plain.key("rl", &a, "minute").starts_with("parapet:rl:{"));
/// # Ok::<(), parapet_core::StoreError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Keyspace {
    prefix: KeyPrefix,
    secret: Option<KeySecret>,
}

impl Keyspace {
    /// Keys under `prefix`, tags unkeyed (plain SHA-256).
    pub fn new(prefix: KeyPrefix) -> Self {
        Self {
            prefix,
            secret: None,
        }
    }

    /// Tags become HMAC-SHA-256 under `secret`.
    #[must_use]
    pub fn with_secret(mut self, secret: KeySecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Another prefix, same secret.
    #[must_use]
    pub fn with_prefix(mut self, prefix: KeyPrefix) -> Self {
        self.prefix = prefix;
        self
    }

    /// The prefix.
    pub fn prefix(&self) -> &KeyPrefix {
        &self.prefix
    }

    /// True when tags are keyed by a secret.
    pub fn is_keyed(&self) -> bool {
        self.secret.is_some()
    }

    /// The tag of user-controlled `bytes`.
    pub fn tag(&self, bytes: &[u8]) -> HashTag {
        match &self.secret {
            None => HashTag::of(bytes),
            Some(KeySecret(mac)) => {
                let mut mac = mac.clone();
                mac.update(bytes);
                HashTag::truncate(&mac.finalize().into_bytes())
            }
        }
    }

    /// `{prefix}:{kind}:{tag}:{suffix}`. `kind` and `suffix` are the caller's constants or
    /// validated names, never request data.
    pub fn key(&self, kind: &str, tag: &HashTag, suffix: &str) -> String {
        debug_assert!(is_key_word(kind) && (suffix.is_empty() || is_key_word(suffix)));
        let prefix = self.prefix.as_str();
        let mut key = String::with_capacity(prefix.len() + kind.len() + suffix.len() + 38);
        key.push_str(prefix);
        key.push(':');
        key.push_str(kind);
        key.push(':');
        tag.push_braced(&mut key);
        if !suffix.is_empty() {
            key.push(':');
            key.push_str(suffix);
        }
        key
    }

    /// `{prefix}:{kind}:{name}`: a key or channel of the deployment, not of a subject.
    pub fn name(&self, kind: &str, name: &str) -> String {
        debug_assert!(is_key_word(kind) && is_key_word(name));
        format!("{}:{kind}:{name}", self.prefix.as_str())
    }
}

impl HashTag {
    fn push_hex(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for byte in self.0 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }

    /// Appends `{32 hex digits}` to `out`, growing it only if it lacks the 34 bytes; the
    /// braces make the tag a Redis Cluster hash tag when it is part of a key. Keys and
    /// fields are built on every store call, so this skips the formatting machinery.
    ///
    /// ```
    /// use parapet_core::HashTag;
    ///
    /// let mut field = String::from("d");
    /// HashTag::of(b"abc").push_braced(&mut field);
    /// assert_eq!(field, "d{ba7816bf8f01cfea414140de5dae2223}");
    /// ```
    pub fn push_braced(&self, out: &mut String) {
        out.reserve(34);
        out.push('{');
        self.push_hex(out);
        out.push('}');
    }
}

impl fmt::Display for HashTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.push_braced(&mut text);
        f.write_str(&text)
    }
}

impl fmt::Debug for HashTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashTag({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_validation() {
        assert!(KeyPrefix::new("app-1.prod_x").is_ok());
        for bad in ["", "a:b", "{x}", "a b", "é", &"x".repeat(65)] {
            assert!(KeyPrefix::new(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn key_layout_has_one_hash_tag() {
        let tag = HashTag::of(b"ip:192.0.2.1");
        let key = Keyspace::default().key("rl", &tag, "minute");
        assert!(key.starts_with("parapet:rl:{"), "{key}");
        assert!(key.ends_with("}:minute"), "{key}");
        assert_eq!(key.matches('{').count(), 1);
        assert_eq!(key.len(), "parapet:rl:".len() + 34 + ":minute".len());
    }

    #[test]
    fn tags_are_stable_and_distinct() {
        assert_eq!(HashTag::of(b"a"), HashTag::of(b"a"));
        assert_ne!(HashTag::of(b"a"), HashTag::of(b"b"));
        // SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223 (FIPS 180-2, appendix B.1).
        assert_eq!(
            HashTag::of(b"abc").to_string(),
            "{ba7816bf8f01cfea414140de5dae2223}"
        );
    }

    #[test]
    fn keyed_tags_differ_by_secret_and_match_rfc_4231() {
        let a = Keyspace::default().with_secret(KeySecret::new([0x0b; 20]).unwrap());
        // RFC 4231 test case 1: HMAC-SHA-256(key = 0x0b × 20, "Hi There") starts b0344c61…
        assert_eq!(
            a.tag(b"Hi There").to_string(),
            "{b0344c61d8db38535ca8afceaf0bf12b}"
        );
        let b = Keyspace::default().with_secret(KeySecret::new([0x0c; 20]).unwrap());
        assert_ne!(a.tag(b"x"), b.tag(b"x"));
        assert_eq!(a.tag(b"x"), a.clone().tag(b"x"));
        assert!(KeySecret::new("short").is_err());
        assert!(!format!("{a:?}").contains("11"), "{a:?}");
    }
}
