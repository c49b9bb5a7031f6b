//! Key namespacing: `{prefix}:{kind}:{tag}:{suffix}`.
//!
//! The prefix and kind come from configuration and are validated; the only part that comes
//! from a request is hashed into a [`HashTag`], so a user can neither pick a key in another
//! namespace nor make two subjects share one, and secrets (API keys, session ids) are never
//! stored in clear. The tag is wrapped in `{…}` so every key of one subject falls in one Redis
//! Cluster slot and one Lua script may touch them all.

use std::fmt;
use std::sync::Arc;

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

    /// `{prefix}:{kind}:{tag}:{suffix}`. `kind` and `suffix` are the caller's constants or
    /// validated names, never request data.
    pub fn key(&self, kind: &str, tag: &HashTag, suffix: &str) -> String {
        debug_assert!(is_key_word(kind) && (suffix.is_empty() || is_key_word(suffix)));
        let mut key = String::with_capacity(self.0.len() + kind.len() + suffix.len() + 38);
        key.push_str(&self.0);
        key.push(':');
        key.push_str(kind);
        key.push(':');
        tag.write_to(&mut key);
        if !suffix.is_empty() {
            key.push(':');
            key.push_str(suffix);
        }
        key
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
    /// Hashes `bytes`. The same bytes give the same tag on every instance and every run.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut tag = [0; 16];
        tag.copy_from_slice(&digest[..16]);
        Self(tag)
    }
}

impl HashTag {
    /// Appends `{32 hex digits}` (keys are built on every store call: no formatting machinery).
    fn write_to(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.reserve(34);
        out.push('{');
        for byte in self.0 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out.push('}');
    }
}

impl fmt::Display for HashTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.write_to(&mut text);
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
        let key = KeyPrefix::default().key("rl", &tag, "minute");
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
}
