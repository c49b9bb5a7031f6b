//! The local copy of the revocations that every request is checked against.
//!
//! Revocations only grow until they expire: a revoked token stays revoked until it would
//! have expired anyway, an epoch only moves forward. So the replica is a union: a snapshot
//! loaded from the store and the announcements heard meanwhile can be applied in any
//! order, any number of times, and give the same set.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What a token is checked by.
pub(crate) struct Facts<'a> {
    pub(crate) iss: Option<&'a str>,
    pub(crate) jti: Option<&'a str>,
    pub(crate) sub: Option<&'a str>,
    /// `iat` in ms since the Unix epoch.
    pub(crate) iat_ms: u64,
}

/// The revoked tokens, keyed by a per-process keyed 128-bit hash of the token's member
/// (see [`member`]), valued by the instant (ms) after which the token is dead anyway.
type Tokens = HashMap<u128, u64, BuildHasherDefault<Prehashed>>;

pub(crate) struct Replica {
    keys: (RandomState, RandomState),
    tokens: RwLock<Tokens>,
    /// User → epoch (ms): the user's tokens issued at or before it are revoked.
    users: RwLock<HashMap<Box<str>, u64>>,
    token_count: AtomicUsize,
    user_count: AtomicUsize,
    /// Every token issued at or before it is revoked (ms; 0: none).
    global: AtomicU64,
    /// How long after its epoch a user entry can still matter (see `Rules::retention_ms`).
    retention_ms: u64,
    next_sweep: AtomicU64,
}

/// How often, at most, an insert sweeps out what expired.
const SWEEP_EVERY_MS: u64 = 1_000;

impl Replica {
    pub(crate) fn new(retention_ms: u64) -> Self {
        Self {
            keys: (RandomState::new(), RandomState::new()),
            tokens: RwLock::default(),
            users: RwLock::default(),
            token_count: AtomicUsize::new(0),
            user_count: AtomicUsize::new(0),
            global: AtomicU64::new(0),
            retention_ms,
            next_sweep: AtomicU64::new(0),
        }
    }

    fn token_key(&self, iss: Option<&str>, jti: &str) -> u128 {
        let mut a = self.keys.0.build_hasher();
        let mut b = self.keys.1.build_hasher();
        for part in member_parts(iss, jti, &mut itoa::Buffer::new()) {
            a.write(part);
            b.write(part);
        }
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }

    fn member_key(&self, member: &[u8]) -> u128 {
        let (a, b) = (
            self.keys.0.hash_one_bytes(member),
            self.keys.1.hash_one_bytes(member),
        );
        (u128::from(a) << 64) | u128::from(b)
    }

    /// True when the token is revoked at `now_ms`.
    pub(crate) fn is_revoked(&self, facts: &Facts<'_>, now_ms: u64) -> bool {
        let global = self.global.load(Ordering::Acquire);
        if global != 0 && facts.iat_ms <= global {
            return true;
        }
        if let Some(sub) = facts.sub
            && self.user_count.load(Ordering::Acquire) > 0
            && read(&self.users)
                .get(sub)
                .is_some_and(|&epoch| facts.iat_ms <= epoch)
        {
            return true;
        }
        if let Some(jti) = facts.jti
            && self.token_count.load(Ordering::Acquire) > 0
        {
            let key = self.token_key(facts.iss, jti);
            return read(&self.tokens)
                .get(&key)
                .is_some_and(|&until| until > now_ms);
        }
        false
    }

    /// True when the token of `member` is recorded as revoked at `now_ms`.
    pub(crate) fn has_member(&self, member: &[u8], now_ms: u64) -> bool {
        read(&self.tokens)
            .get(&self.member_key(member))
            .is_some_and(|&until| until > now_ms)
    }

    /// Records a revoked token (its [`member`]) until `until_ms`.
    pub(crate) fn revoke_member(&self, member: &[u8], until_ms: u64, now_ms: u64) {
        if until_ms <= now_ms {
            return;
        }
        let key = self.member_key(member);
        let mut tokens = write(&self.tokens);
        let slot = tokens.entry(key).or_insert(0);
        *slot = (*slot).max(until_ms);
        self.token_count.store(tokens.len(), Ordering::Release);
        drop(tokens);
        if self.sweep_due(now_ms) {
            self.sweep(now_ms);
        }
    }

    /// Records many revoked tokens under one lock (a page of a load).
    pub(crate) fn revoke_members<'m>(
        &self,
        members: impl IntoIterator<Item = (&'m [u8], u64)>,
        now_ms: u64,
    ) {
        let mut tokens = write(&self.tokens);
        for (member, until_ms) in members {
            if until_ms > now_ms {
                let slot = tokens.entry(self.member_key(member)).or_insert(0);
                *slot = (*slot).max(until_ms);
            }
        }
        self.token_count.store(tokens.len(), Ordering::Release);
    }

    /// Records many user epochs under one lock (a page of a load).
    pub(crate) fn revoke_users<'u>(
        &self,
        users: impl IntoIterator<Item = (&'u str, u64)>,
        now_ms: u64,
    ) {
        let mut map = write(&self.users);
        for (user, epoch_ms) in users {
            if epoch_ms.saturating_add(self.retention_ms) <= now_ms {
                continue;
            }
            match map.get_mut(user) {
                Some(epoch) => *epoch = (*epoch).max(epoch_ms),
                None => {
                    map.insert(user.into(), epoch_ms);
                }
            }
        }
        self.user_count.store(map.len(), Ordering::Release);
    }

    /// Drops every entry that ended by `now_ms`.
    pub(crate) fn sweep(&self, now_ms: u64) {
        let mut tokens = write(&self.tokens);
        tokens.retain(|_, until| *until > now_ms);
        self.token_count.store(tokens.len(), Ordering::Release);
        drop(tokens);
        let mut users = write(&self.users);
        users.retain(|_, epoch| epoch.saturating_add(self.retention_ms) > now_ms);
        self.user_count.store(users.len(), Ordering::Release);
    }

    /// True when `user` has an epoch.
    pub(crate) fn has_user(&self, user: &str) -> bool {
        read(&self.users).contains_key(user)
    }

    /// Revokes `user`'s tokens issued at or before `epoch_ms`.
    pub(crate) fn revoke_user(&self, user: &str, epoch_ms: u64, now_ms: u64) {
        if epoch_ms.saturating_add(self.retention_ms) <= now_ms {
            return;
        }
        let mut users = write(&self.users);
        match users.get_mut(user) {
            Some(epoch) => *epoch = (*epoch).max(epoch_ms),
            None => {
                users.insert(user.into(), epoch_ms);
            }
        }
        if self.sweep_due(now_ms) {
            users.retain(|_, epoch| epoch.saturating_add(self.retention_ms) > now_ms);
        }
        self.user_count.store(users.len(), Ordering::Release);
    }

    /// Revokes every token issued at or before `epoch_ms`.
    pub(crate) fn revoke_all(&self, epoch_ms: u64) {
        self.global.fetch_max(epoch_ms, Ordering::AcqRel);
    }

    pub(crate) fn sweep_due(&self, now_ms: u64) -> bool {
        let next = self.next_sweep.load(Ordering::Relaxed);
        now_ms >= next
            && self
                .next_sweep
                .compare_exchange(
                    next,
                    now_ms + SWEEP_EVERY_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Applies an announcement (see [`Announcement`]); garbage is ignored (then the answer
    /// is false), and so are epochs more than an hour ahead of this instance's clock (a
    /// stray `g<u64::MAX>` on the channel would otherwise revoke everything until restart).
    pub(crate) fn apply(&self, payload: &[u8], now_ms: u64) -> bool {
        let plausible = |epoch_ms: u64| epoch_ms <= now_ms.saturating_add(3_600_000);
        match Announcement::parse(payload) {
            Some(Announcement::User { epoch_ms, .. } | Announcement::All { epoch_ms })
                if !plausible(epoch_ms) =>
            {
                tracing::warn!("ignoring a revocation epoch far in the future");
            }
            Some(Announcement::Token { until_ms, member }) => {
                self.revoke_member(member, until_ms, now_ms);
            }
            Some(Announcement::User { epoch_ms, user }) => self.revoke_user(user, epoch_ms, now_ms),
            Some(Announcement::All { epoch_ms }) => self.revoke_all(epoch_ms),
            None => {
                tracing::warn!("ignoring a malformed revocation announcement");
                return false;
            }
        }
        true
    }

    /// Entries held: (tokens, users).
    pub(crate) fn len(&self) -> (usize, usize) {
        (
            self.token_count.load(Ordering::Acquire),
            self.user_count.load(Ordering::Acquire),
        )
    }

    /// The global epoch (ms; 0 for none).
    pub(crate) fn global_epoch(&self) -> u64 {
        self.global.load(Ordering::Acquire)
    }
}

trait HashBytes {
    fn hash_one_bytes(&self, bytes: &[u8]) -> u64;
}

impl HashBytes for RandomState {
    fn hash_one_bytes(&self, bytes: &[u8]) -> u64 {
        let mut hasher = self.build_hasher();
        hasher.write(bytes);
        hasher.finish()
    }
}

/// The pieces of a token's member `<len(iss)>:<iss><jti>`: the issuer's length prefix
/// keeps `("ab", "c")` and `("a", "bc")` apart.
fn member_parts<'a>(
    iss: Option<&'a str>,
    jti: &'a str,
    buffer: &'a mut itoa::Buffer,
) -> [&'a [u8]; 4] {
    let iss = iss.unwrap_or("");
    [
        buffer.format(iss.len()).as_bytes(),
        b":",
        iss.as_bytes(),
        jti.as_bytes(),
    ]
}

/// A token's member, as the store and the announcements name it.
pub(crate) fn member(iss: Option<&str>, jti: &str) -> Vec<u8> {
    member_parts(iss, jti, &mut itoa::Buffer::new()).concat()
}

/// What the stores announce, one per change:
/// `t<until ms> <member>`, `u<epoch ms> <user>`, `g<epoch ms>`.
#[derive(Debug, PartialEq)]
pub(crate) enum Announcement<'a> {
    Token { until_ms: u64, member: &'a [u8] },
    User { epoch_ms: u64, user: &'a str },
    All { epoch_ms: u64 },
}

impl<'a> Announcement<'a> {
    pub(crate) fn parse(payload: &'a [u8]) -> Option<Self> {
        let (&kind, rest) = payload.split_first()?;
        let (number, tail) = match rest.iter().position(|&b| b == b' ') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let number: u64 = std::str::from_utf8(number).ok()?.parse().ok()?;
        match (kind, tail) {
            (b't', Some(member)) if !member.is_empty() => Some(Self::Token {
                until_ms: number,
                member,
            }),
            (b'u', Some(user)) if !user.is_empty() => Some(Self::User {
                epoch_ms: number,
                user: std::str::from_utf8(user).ok()?,
            }),
            (b'g', None) => Some(Self::All { epoch_ms: number }),
            _ => None,
        }
    }
}

/// Keys that are already uniformly random need no second hash.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        // Truncation keeps the low half, as random as the rest.
        self.0 = n as u64;
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(jti: Option<&'a str>, sub: Option<&'a str>, iat_ms: u64) -> Facts<'a> {
        Facts {
            iss: Some("me"),
            jti,
            sub,
            iat_ms,
        }
    }

    #[test]
    fn the_request_key_equals_the_member_key() {
        let replica = Replica::new(60_000);
        assert_eq!(
            replica.token_key(Some("me"), "t1"),
            replica.member_key(&member(Some("me"), "t1"))
        );
        assert_eq!(replica.token_key(None, "t1"), replica.member_key(b"0:t1"));
        assert_ne!(
            replica.token_key(Some("ab"), "c"),
            replica.token_key(Some("a"), "bc")
        );
    }

    #[test]
    fn tokens_users_and_epochs() {
        let replica = Replica::new(60_000);
        let now = 1_000_000;
        replica.revoke_member(&member(Some("me"), "t1"), now + 10, now);
        assert!(replica.is_revoked(&facts(Some("t1"), None, now - 5), now));
        assert!(!replica.is_revoked(&facts(Some("t2"), None, now - 5), now));
        // Gone when the token would have expired anyway.
        assert!(!replica.is_revoked(&facts(Some("t1"), None, now - 5), now + 10));

        replica.revoke_user("alice", now, now);
        assert!(replica.is_revoked(&facts(None, Some("alice"), now), now));
        assert!(!replica.is_revoked(&facts(None, Some("alice"), now + 1), now));
        assert!(!replica.is_revoked(&facts(None, Some("bob"), now), now));

        replica.revoke_all(now + 100);
        assert!(replica.is_revoked(&facts(None, Some("bob"), now + 100), now));
        assert!(!replica.is_revoked(&facts(None, Some("bob"), now + 101), now));
        // Epochs only move forward.
        replica.revoke_all(now);
        assert_eq!(replica.global_epoch(), now + 100);
    }

    #[test]
    fn expired_entries_are_swept_on_insert() {
        let replica = Replica::new(1_000);
        for i in 0..100 {
            replica.revoke_member(&member(None, &i.to_string()), 2_000, 1_000);
        }
        replica.revoke_user("old", 1_000, 1_000);
        assert_eq!(replica.len(), (100, 1));
        // Past every entry's end, the next insert sweeps.
        replica.revoke_member(b"0:new", 10_000, 5_000);
        assert_eq!(replica.len(), (1, 0));
    }

    #[test]
    fn announcements_round_trip() {
        assert_eq!(
            Announcement::parse(b"t123 5:issuerjti"),
            Some(Announcement::Token {
                until_ms: 123,
                member: b"5:issuerjti"
            })
        );
        assert_eq!(
            Announcement::parse(b"u7 al ice"),
            Some(Announcement::User {
                epoch_ms: 7,
                user: "al ice"
            })
        );
        assert_eq!(
            Announcement::parse(b"g9"),
            Some(Announcement::All { epoch_ms: 9 })
        );
        for garbage in [&b""[..], b"t", b"t12", b"x1 a", b"g1 a", b"u-1 a", b"t1 "] {
            assert_eq!(Announcement::parse(garbage), None, "{garbage:?}");
        }
    }
}
