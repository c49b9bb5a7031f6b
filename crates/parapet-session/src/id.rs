//! Session ids: what the cookie carries, and the [`SessionKey`] a store sees instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parapet_core::HashTag;

use crate::SessionKey;

/// Bytes of the secret part: 256 bits from the OS CSPRNG.
const SECRET: usize = 32;
/// Bytes of the group part: which Redis slot (and user index) the session lives with.
const GROUP: usize = 16;
/// Characters of a cookie value: base64url of 48 bytes, unpadded.
pub(crate) const COOKIE_LEN: usize = (SECRET + GROUP) * 4 / 3;

/// A session id as the cookie carries it: a 256-bit secret and a 128-bit group.
///
/// The group of a logged-in session is its user's group, so all of one user's sessions and
/// the user's index share one Redis Cluster slot and one script can limit, list or revoke
/// them. An anonymous session gets a random group. The group is not secret: changing it
/// in a cookie only points at a key that does not exist.
///
/// `Debug` shows nothing of the secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SessionId {
    secret: [u8; SECRET],
    group: [u8; GROUP],
}

impl SessionId {
    /// A new id in `group`, or in a random group.
    pub(crate) fn generate(group: Option<[u8; GROUP]>) -> Result<Self, getrandom::Error> {
        let mut secret = [0; SECRET];
        getrandom::fill(&mut secret)?;
        let group = match group {
            Some(group) => group,
            None => {
                let mut group = [0; GROUP];
                getrandom::fill(&mut group)?;
                group
            }
        };
        Ok(Self { secret, group })
    }

    /// The id a cookie value holds, if it is one: exactly 64 base64url characters. Anything
    /// else (garbage, truncated, padded, oversized) is no id, before any store call.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        if value.len() != COOKIE_LEN {
            return None;
        }
        let mut bytes = [0; SECRET + GROUP];
        match URL_SAFE_NO_PAD.decode_slice(value, &mut bytes) {
            Ok(n) if n == bytes.len() => {}
            _ => return None,
        }
        let mut secret = [0; SECRET];
        let mut group = [0; GROUP];
        secret.copy_from_slice(&bytes[..SECRET]);
        group.copy_from_slice(&bytes[SECRET..]);
        Some(Self { secret, group })
    }

    /// The cookie value.
    pub(crate) fn encode(&self) -> String {
        let mut bytes = [0; SECRET + GROUP];
        bytes[..SECRET].copy_from_slice(&self.secret);
        bytes[SECRET..].copy_from_slice(&self.group);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// What the store sees: the group and SHA-256 of the secret (128 bits kept), so a store
    /// dump or a log line never yields a usable id.
    pub(crate) fn key(&self) -> SessionKey {
        SessionKey::new(self.group, *HashTag::of(&self.secret).as_bytes())
    }

    /// The group this id lives in.
    pub(crate) fn group(&self) -> [u8; GROUP] {
        self.group
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_everything_else() {
        let id = SessionId::generate(None).unwrap_or_else(|_| unreachable!());
        let value = id.encode();
        assert_eq!(value.len(), COOKIE_LEN);
        assert_eq!(SessionId::parse(&value), Some(id.clone()));
        assert_eq!(SessionId::parse(&value[1..]), None, "truncated");
        assert_eq!(SessionId::parse(&format!("{value}A")), None, "too long");
        assert_eq!(SessionId::parse(&value.replace(&value[..1], "+")), None);
        assert_eq!(SessionId::parse(&"=".repeat(COOKIE_LEN)), None);
        assert_eq!(SessionId::parse(""), None);
        assert_eq!(SessionId::parse(&"é".repeat(32)), None);
    }

    #[test]
    fn ids_are_random_and_the_key_hides_the_secret() {
        let a = SessionId::generate(None).unwrap_or_else(|_| unreachable!());
        let b = SessionId::generate(Some(a.group())).unwrap_or_else(|_| unreachable!());
        assert_ne!(a.encode(), b.encode());
        assert_eq!(a.key().group(), b.key().group());
        assert_ne!(a.key().id(), b.key().id());
        let handle = a.key().handle();
        assert_eq!(handle.len(), 32);
        assert!(!a.encode().contains(&handle));
        assert_eq!(format!("{a:?}"), "SessionId(***)");
    }
}
