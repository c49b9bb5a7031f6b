//! The user id as the Redis store keeps it (`m:user`): sealed under the key secret when
//! there is one, so a dump of Redis names no user.
//!
//! The construction is SIV-like: the session's group is already the keyed MAC of the user
//! id (`Keyspace::tag`), so it serves as the synthetic IV: the stored value is
//! `"\0u1" || user ⊕ keystream(group)`, where the keystream is the keyed MAC of
//! `("parapet session user", group, block)`, 16 bytes a block. The same user gives the same
//! value (their group shows that already); opening checks that the id read back has the
//! group it is stored under, so a value moved to another session opens to nothing. Without
//! a key secret the id is stored as it is.

use parapet_core::Keyspace;

const SEALED: &[u8] = b"\0u1";
const CONTEXT: &[u8] = b"parapet session user\0";

/// `user` as stored in a session of `group`.
pub(super) fn seal(keyspace: &Keyspace, sealed: bool, group: &[u8; 16], user: &str) -> Vec<u8> {
    if !sealed {
        return user.as_bytes().to_vec();
    }
    let mut out = SEALED.to_vec();
    out.extend(xor(keyspace, group, user.as_bytes()));
    out
}

/// The user id stored as `value` in a session of `group`; `None` when it does not open.
pub(super) fn open(
    keyspace: &Keyspace,
    sealed: bool,
    group: &[u8; 16],
    value: &[u8],
) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    let Some(body) = value.strip_prefix(SEALED) else {
        // In clear: written without a key secret, or before one was set.
        return Some(String::from_utf8_lossy(value).into_owned());
    };
    if !sealed {
        return None;
    }
    String::from_utf8(xor(keyspace, group, body)).ok()
}

fn xor(keyspace: &Keyspace, group: &[u8; 16], bytes: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(CONTEXT.len() + 16 + 4);
    bytes
        .chunks(16)
        .enumerate()
        .flat_map(|(block, chunk)| {
            input.clear();
            input.extend_from_slice(CONTEXT);
            input.extend_from_slice(group);
            input.extend_from_slice(&u32::try_from(block).unwrap_or(u32::MAX).to_be_bytes());
            let pad = *keyspace.tag(&input).as_bytes();
            chunk
                .iter()
                .zip(pad)
                .map(|(b, p)| b ^ p)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::KeySecret;

    #[test]
    fn sealed_ids_open_only_in_their_group() {
        let keyspace =
            Keyspace::default().with_secret(KeySecret::new("sixteen bytes at least!").unwrap());
        let user = "alice@example.com, a user id longer than one block";
        let group = *keyspace.tag(user.as_bytes()).as_bytes();
        let stored = seal(&keyspace, true, &group, user);
        assert!(stored.starts_with(SEALED));
        assert!(!stored.windows(5).any(|w| w == b"alice"), "no clear text");
        assert_eq!(
            open(&keyspace, true, &group, &stored).as_deref(),
            Some(user)
        );
        let other = *keyspace.tag(b"bob").as_bytes();
        assert_eq!(open(&keyspace, true, &other, &stored), None);
        // Without a secret: as it is, both ways; an older clear value opens as it was.
        let plain = Keyspace::default();
        assert_eq!(seal(&plain, false, &group, "bob"), b"bob");
        assert_eq!(
            open(&keyspace, true, &group, b"bob").as_deref(),
            Some("bob")
        );
        assert_eq!(open(&plain, false, &group, &stored), None);
    }
}
