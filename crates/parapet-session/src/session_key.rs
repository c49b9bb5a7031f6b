//! What a store knows of a session: never the id itself.

use std::fmt;

use parapet_core::HashTag;

/// A session as a store sees it: its group (which user, or a random group for an anonymous
/// session) and a 128-bit SHA-256 digest of its secret id. The cookie's secret never
/// reaches a store, a log or a metric; a key cannot be turned back into a cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey {
    group: [u8; 16],
    id: [u8; 16],
}

impl SessionKey {
    /// A key from its parts; stores get keys from the layer and need not build them.
    pub fn new(group: [u8; 16], id: [u8; 16]) -> Self {
        Self { group, id }
    }

    /// The group: all sessions of one user share it.
    pub fn group(&self) -> &[u8; 16] {
        &self.group
    }

    /// The digest of the session's secret id.
    pub fn id(&self) -> &[u8; 16] {
        &self.id
    }

    /// The digest in 32 lowercase hex digits: the session's handle in
    /// [`SessionInfo`](crate::SessionInfo), safe to show to its user or log.
    pub fn handle(&self) -> String {
        hex(&self.id)
    }

    /// Group and digest in 32 bytes, for a map key.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut bytes = [0; 32];
        bytes[..16].copy_from_slice(&self.group);
        bytes[16..].copy_from_slice(&self.id);
        bytes
    }
}

/// Lowercase hex of 16 bytes.
pub(crate) fn hex(bytes: &[u8; 16]) -> String {
    HashTag::from_bytes(*bytes).hex()
}

/// The 16 bytes of a 32-hex-digit handle, if it is one.
pub(crate) fn unhex(handle: &str) -> Option<[u8; 16]> {
    let digits = handle.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0; 16];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", self.handle())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_reject_junk() {
        let key = SessionKey::new([1; 16], [0xab; 16]);
        assert_eq!(key.handle(), "ab".repeat(16));
        assert_eq!(unhex(&key.handle()), Some([0xab; 16]));
        assert_eq!(unhex("ab"), None);
        assert_eq!(unhex(&"zz".repeat(16)), None);
        assert_eq!(unhex(&"é".repeat(16)), None);
        assert_eq!(unhex(&"+1".repeat(16)), None);
    }
}
