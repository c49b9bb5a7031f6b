//! Sessions in this process.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parapet_core::table::{Expiring, Table, WhenFull};
use parapet_core::{Clock, KeySecret, Keyspace, StoreCall, StoreError, SystemClock};

use super::{Changes, Created, Incremented, Loaded, NewSession, Revoke, Saved, SessionStore};
use crate::{OverLimit, SessionInfo, SessionKey, SessionRules};

/// Sessions in this process: for one instance, tests and development.
///
/// Bounded: at most [`capacity`](Self::capacity) logged-in sessions (100,000 by default)
/// and, apart, at most [`anonymous_capacity`](Self::anonymous_capacity) anonymous ones
/// (50,000), each at most
/// [`max_session_bytes`](crate::SessionLayerBuilder::max_session_bytes) of data (fields
/// counted with 64 bytes of overhead each, as on Redis). What that costs in process memory
/// was measured, allocator included (`BENCHMARKS.md` §21): about 500 bytes for a session of
/// one small field, 1.8 KB for a cart of four 200-byte fields, 65–69 KB for a full session
/// of fields of 1 KB or more, and up to 2.5 × `max_session_bytes` (164 KB) for a full
/// session of hundreds of tiny fields, where each field's own allocations outweigh its
/// bytes. So plan on `(capacity + anonymous_capacity) × 2.5 × max_session_bytes` at worst
/// (24 GB with the defaults), a few KB per typical session, and lower the bounds for a
/// small host. Expired sessions are swept by the tables as they are used.
///
/// **The room belongs to users first.** Anonymous sessions (a cart before login) have a
/// table of their own: when it is full, the anonymous sessions nearest to their idle
/// expiry (the least recently used) are evicted for a new one, so a flood of anonymous
/// sessions churns only anonymous sessions. Logins never compete with it: a login creates
/// a logged-in session in the other table. When *that* one is full of live sessions, a
/// new login is refused ([`StoreError::CapacityExceeded`], a 503) rather than logging
/// another user out; set [`when_full`](Self::when_full) to evict those nearest to expiry
/// instead.
///
/// Every operation is atomic: reads and single-session writes lock one shard; creating,
/// rotating, deleting and revoking (which touch a user's index too) hold the store's
/// write lock, which a login rate never makes contended.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Logged-in sessions, and their rotation aliases.
    sessions: Table<Record>,
    /// Anonymous sessions, and their rotation aliases: evicted by nearest expiry when full.
    anonymous: Table<Record>,
    users: Table<Index>,
    /// Held for reading by single-session operations, for writing by those that touch an
    /// index and several sessions, so no two shard locks are ever held together.
    order: RwLock<()>,
    clock: Arc<dyn Clock>,
    /// Keys the user groups (a cookie's group part) with a secret of this process: a cookie
    /// does not carry a plain hash of its user's id. Groups need not outlive the process.
    groups: Option<Keyspace>,
    /// Wall time (ms since the epoch) and clock time (µs) when the store was made.
    wall_origin_ms: u64,
    clock_origin_us: u64,
}

enum Record {
    Live(Box<Live>),
    /// A rotated id, pointing at its new key until the grace window ends.
    Alias {
        key: SessionKey,
        to: SessionKey,
        until: i64,
    },
}

struct Live {
    key: SessionKey,
    fields: Vec<(String, Bytes)>,
    bytes: usize,
    user: Option<String>,
    created: i64,
    rotated: i64,
    seen: i64,
    absolute: i64,
    expires: i64,
    ip: Option<String>,
    user_agent: Option<String>,
}

struct Index {
    group: [u8; 16],
    /// Id digest and absolute expiry of each session, in creation order.
    members: Vec<([u8; 16], i64)>,
    expires: i64,
}

impl Expiring for Record {
    fn expires(&self) -> i64 {
        match self {
            Record::Live(live) => live.expires,
            Record::Alias { until, .. } => *until,
        }
    }
}

impl Expiring for Index {
    fn expires(&self) -> i64 {
        self.expires
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store of at most 100,000 logged-in and 50,000 anonymous sessions on the system
    /// clock.
    pub fn new() -> Self {
        Self::build(100_000, 50_000, WhenFull::Refuse, Arc::new(SystemClock))
    }

    /// At most `capacity` logged-in sessions (and as many user indexes).
    #[must_use]
    pub fn capacity(self, capacity: usize) -> Self {
        let inner = &self.inner;
        let when_full = inner.sessions.when_full();
        let anonymous = inner.anonymous.capacity();
        Self::build(capacity, anonymous, when_full, Arc::clone(&inner.clock))
    }

    /// At most `capacity` anonymous sessions; past it, the least recently used anonymous
    /// ones are evicted (counted in
    /// [`ANONYMOUS_EVICTED`](crate::metrics::ANONYMOUS_EVICTED)).
    #[must_use]
    pub fn anonymous_capacity(self, capacity: usize) -> Self {
        let inner = &self.inner;
        let when_full = inner.sessions.when_full();
        let logged_in = inner.sessions.capacity();
        Self::build(logged_in, capacity, when_full, Arc::clone(&inner.clock))
    }

    /// What a store full of live logged-in sessions does with a new one: refuse it
    /// (default) or evict those nearest to expiry.
    #[must_use]
    pub fn when_full(self, when_full: WhenFull) -> Self {
        let inner = &self.inner;
        let (logged_in, anonymous) = (inner.sessions.capacity(), inner.anonymous.capacity());
        Self::build(logged_in, anonymous, when_full, Arc::clone(&inner.clock))
    }

    /// Takes time from `clock` (a [`ManualClock`](parapet_core::ManualClock) in tests).
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        let inner = &self.inner;
        let (logged_in, anonymous) = (inner.sessions.capacity(), inner.anonymous.capacity());
        let when_full = inner.sessions.when_full();
        Self::build(logged_in, anonymous, when_full, Arc::new(clock))
    }

    /// Sessions stored now (logged-in and anonymous), expired ones included until swept.
    pub fn len(&self) -> usize {
        self.inner.sessions.len() + self.inner.anonymous.len()
    }

    /// Anonymous sessions stored now, expired ones included until swept.
    pub fn anonymous_len(&self) -> usize {
        self.inner.anonymous.len()
    }

    /// True when no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn build(
        capacity: usize,
        anonymous: usize,
        when_full: WhenFull,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let wall_origin_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let clock_origin_us = clock.now_micros();
        Self {
            inner: Arc::new(Inner {
                sessions: Table::new(capacity, when_full),
                anonymous: Table::new(anonymous, WhenFull::EvictNearestExpiry),
                users: Table::new(capacity, when_full),
                order: RwLock::new(()),
                clock,
                groups: process_secret().map(|secret| Keyspace::default().with_secret(secret)),
                wall_origin_ms,
                clock_origin_us,
            }),
        }
    }
}

/// A random secret, drawn once per process (always valid: 32 bytes).
fn process_secret() -> Option<KeySecret> {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let bytes = SECRET.get_or_init(|| {
        let mut bytes = [0; 32];
        // Without the OS's randomness, the time: still unknown to a client reading cookies.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes[..16].copy_from_slice(&nanos.to_le_bytes());
        }
        bytes
    });
    KeySecret::new(bytes).ok()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn full() -> StoreError {
    StoreError::CapacityExceeded("session store")
}

impl Inner {
    fn now(&self) -> i64 {
        i64::try_from(self.clock.now_micros()).unwrap_or(i64::MAX)
    }

    fn wall(&self, t: i64) -> SystemTime {
        let since = u64::try_from(t)
            .unwrap_or(0)
            .saturating_sub(self.clock_origin_us);
        UNIX_EPOCH + Duration::from_millis(self.wall_origin_ms) + Duration::from_micros(since)
    }

    fn read(&self) -> RwLockReadGuard<'_, ()> {
        self.order
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, ()> {
        self.order
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn slot(&self, key: &SessionKey) -> u64 {
        self.sessions.hash(&key.to_bytes())
    }

    /// The table of logged-in or of anonymous sessions.
    fn table(&self, logged_in: bool) -> &Table<Record> {
        if logged_in {
            &self.sessions
        } else {
            &self.anonymous
        }
    }

    /// True when either table holds a record (a session or an alias) in `key`'s slot.
    fn taken(&self, key: &SessionKey, now: i64) -> bool {
        let h = self.slot(key);
        [&self.sessions, &self.anonymous]
            .iter()
            .any(|table| table.shard(h).get(h, now).is_some())
    }

    /// Where the rotation alias at `key` points, if it is one.
    fn alias(&self, key: &SessionKey, now: i64) -> Option<SessionKey> {
        let h = self.slot(key);
        [&self.sessions, &self.anonymous].iter().find_map(|table| {
            match table.shard(h).get(h, now) {
                Some(Record::Alias { key: k, to, .. }) if k == key => Some(*to),
                _ => None,
            }
        })
    }

    /// Runs `f` on the live session at `key` (not an alias); `None` when there is none.
    fn with_live<T>(
        &self,
        key: &SessionKey,
        now: i64,
        f: impl FnOnce(&mut Live) -> T,
    ) -> Option<T> {
        let h = self.slot(key);
        for table in [&self.sessions, &self.anonymous] {
            let mut shard = table.shard(h);
            if let Some(Record::Live(live)) = shard.get_mut(h, now)
                && live.key == *key
            {
                return Some(f(live));
            }
        }
        None
    }

    fn remove_session(&self, key: &SessionKey, now: i64) -> Option<Box<Live>> {
        let h = self.slot(key);
        for table in [&self.sessions, &self.anonymous] {
            let mut shard = table.shard(h);
            // A rotation alias stays: it ends with its grace window.
            let ours = match shard.get(h, now) {
                Some(Record::Live(live)) => live.key == *key,
                _ => false,
            };
            if ours && let Some(Record::Live(live)) = shard.take(h) {
                return Some(live);
            }
        }
        None
    }

    fn is_live(&self, key: &SessionKey, now: i64) -> bool {
        self.with_live(key, now, |_| ()).is_some()
    }

    /// The members of the index of `group`.
    fn members(&self, group: &[u8; 16], now: i64) -> Vec<([u8; 16], i64)> {
        let h = self.users.hash(group);
        let shard = self.users.shard(h);
        match shard.get(h, now) {
            Some(index) if index.group == *group => index.members.clone(),
            _ => Vec::new(),
        }
    }

    /// The members of `group` whose session is live.
    fn live_members(
        &self,
        group: &[u8; 16],
        members: Vec<([u8; 16], i64)>,
        now: i64,
    ) -> Vec<([u8; 16], i64)> {
        members
            .into_iter()
            .filter(|(id, _)| self.is_live(&SessionKey::new(*group, *id), now))
            .collect()
    }

    /// The index of `group` with its dead members dropped.
    fn prune(&self, group: &[u8; 16], now: i64) -> Vec<([u8; 16], i64)> {
        self.live_members(group, self.members(group, now), now)
    }

    fn set_index(
        &self,
        group: &[u8; 16],
        members: Vec<([u8; 16], i64)>,
        now: i64,
    ) -> Result<(), StoreError> {
        let h = self.users.hash(group);
        let mut shard = self.users.shard(h);
        match members.iter().map(|(_, abs)| *abs).max() {
            None => shard.remove(h),
            // A colliding index of another user (2⁻⁶⁴, keyed hash) is replaced: that user's
            // sessions live on, unlisted.
            Some(expires) => {
                let index = Index {
                    group: *group,
                    members,
                    expires,
                };
                shard.insert(h, index, now).map_err(|_| full())?;
            }
        }
        Ok(())
    }
}

/// What a field costs beyond its name and value, for the byte limit (as in Redis).
const FIELD_OVERHEAD: usize = 64;

fn cost(name: &str, value: &[u8]) -> usize {
    FIELD_OVERHEAD + name.len() + value.len()
}

/// Applies `changes` to `fields`, or says it would exceed `max` bytes (then nothing changed).
fn apply(live: &mut Live, changes: &Changes, max: usize) -> bool {
    let mut bytes = if changes.clear { 0 } else { live.bytes };
    for (name, value) in &changes.set {
        if !changes.clear
            && let Some((k, v)) = live.fields.iter().find(|(k, _)| k == name)
        {
            bytes -= cost(k, v);
        }
        bytes += cost(name, value);
    }
    for name in &changes.remove {
        if !changes.clear
            && !changes.set.iter().any(|(k, _)| k == name)
            && let Some((k, v)) = live.fields.iter().find(|(k, _)| k == name)
        {
            bytes -= cost(k, v);
        }
    }
    if bytes > max {
        return false;
    }
    if changes.clear {
        live.fields.clear();
    }
    for (name, value) in &changes.set {
        match live.fields.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.clone(),
            None => live.fields.push((name.clone(), value.clone())),
        }
    }
    live.fields.retain(|(k, _)| !changes.remove.contains(k));
    live.bytes = bytes;
    true
}

fn touch(live: &mut Live, now: i64, rules: &SessionRules) {
    live.seen = now;
    live.expires = now
        .saturating_add(micros(rules.idle_timeout))
        .min(live.absolute);
}

impl SessionStore for MemoryStore {
    fn user_group(&self, user: &str) -> [u8; 16] {
        match &self.inner.groups {
            Some(groups) => *groups.tag(user.as_bytes()).as_bytes(),
            None => *parapet_core::HashTag::of(user.as_bytes()).as_bytes(),
        }
    }

    fn load(&self, key: &SessionKey, rules: &SessionRules) -> StoreCall<Option<Loaded>> {
        let inner = &self.inner;
        let _order = inner.read();
        let now = inner.now();
        let target = inner.alias(key, now).unwrap_or(*key);
        let touch_after = micros(rules.touch_after);
        let loaded = inner.with_live(&target, now, |live| {
            if now - live.seen >= touch_after {
                touch(live, now, rules);
            }
            let mut loaded = Loaded::new(target, inner.wall(live.created));
            loaded.fields = live.fields.clone();
            loaded.user = live.user.clone();
            loaded.rotated = inner.wall(live.rotated);
            loaded.now = inner.wall(now);
            loaded.ip = live.ip.clone();
            loaded.user_agent = live.user_agent.clone();
            loaded
        });
        StoreCall::ready(Ok(loaded))
    }

    fn save(&self, key: &SessionKey, changes: &Changes, rules: &SessionRules) -> StoreCall<Saved> {
        let inner = &self.inner;
        let _order = inner.read();
        let now = inner.now();
        let saved = inner.with_live(key, now, |live| {
            if !apply(live, changes, rules.max_session_bytes) {
                return Saved::TooLarge;
            }
            touch(live, now, rules);
            Saved::Done
        });
        StoreCall::ready(Ok(saved.unwrap_or(Saved::Gone)))
    }

    fn create(
        &self,
        key: &SessionKey,
        session: &NewSession,
        rules: &SessionRules,
    ) -> StoreCall<Created> {
        let inner = &self.inner;
        let _order = inner.write();
        let now = inner.now();
        let h = inner.slot(key);
        if inner.taken(key, now) {
            return StoreCall::ready(Ok(Created::Collision));
        }
        let bytes: usize = session.changes.set.iter().map(|(k, v)| cost(k, v)).sum();
        if bytes > rules.max_session_bytes {
            return StoreCall::ready(Ok(Created::TooLarge));
        }
        // Nothing is evicted for a session that would not fit (the write lock is held:
        // the room made stays). The anonymous table evicts; the other may refuse.
        let table = inner.table(session.user.is_some());
        match table.shard(h).make_room(1, now) {
            Err(_) => return StoreCall::ready(Err(full())),
            Ok(n) if session.user.is_none() => crate::metrics::anonymous_evicted(n),
            Ok(_) => {}
        }
        let absolute = now.saturating_add(micros(rules.absolute_timeout));
        let mut evicted = 0;
        let mut members = Vec::new();
        if session.user.is_some() {
            members = inner.prune(key.group(), now);
            let replaced = session
                .replaces
                .filter(|r| members.iter().any(|(id, _)| id == r));
            let counted = members.len() - usize::from(replaced.is_some());
            if let Some((limit, policy)) = session.limit {
                let mut over = (counted + 1).saturating_sub(limit as usize);
                if over > 0 && policy == OverLimit::RejectNew {
                    let result = inner.set_index(key.group(), members, now);
                    return StoreCall::ready(result.map(|()| Created::OverLimit));
                }
                members.retain(|(id, _)| {
                    if over == 0 || Some(*id) == replaced {
                        return true;
                    }
                    over -= 1;
                    evicted += 1;
                    inner.remove_session(&SessionKey::new(*key.group(), *id), now);
                    false
                });
            }
            if let Some(replaced) = replaced {
                inner.remove_session(&SessionKey::new(*key.group(), replaced), now);
                members.retain(|(id, _)| *id != replaced);
            }
        }
        let live = Live {
            key: *key,
            fields: session.changes.set.clone(),
            bytes,
            user: session.user.clone(),
            created: now,
            rotated: now,
            seen: now,
            absolute,
            expires: now.saturating_add(micros(rules.idle_timeout)).min(absolute),
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
        };
        if table
            .shard(h)
            .insert(h, Record::Live(Box::new(live)), now)
            .is_err()
        {
            return StoreCall::ready(Err(full()));
        }
        if session.user.is_some() {
            members.push((*key.id(), absolute));
            if let Err(e) = inner.set_index(key.group(), members, now) {
                inner.remove_session(key, now);
                return StoreCall::ready(Err(e));
            }
        }
        StoreCall::ready(Ok(Created::Done { evicted }))
    }

    fn rotate(
        &self,
        old: &SessionKey,
        new: &SessionKey,
        changes: &Changes,
        grace: Duration,
        rules: &SessionRules,
    ) -> StoreCall<Saved> {
        let inner = &self.inner;
        let _order = inner.write();
        let now = inner.now();
        let hn = inner.slot(new);
        if inner.taken(new, now) {
            return StoreCall::ready(Ok(Saved::Collision));
        }
        let Some(mut live) = inner.remove_session(old, now) else {
            return StoreCall::ready(Ok(Saved::Gone));
        };
        let table = inner.table(live.user.is_some());
        let put_back = |live: Box<Live>| {
            let h = inner.slot(old);
            table.shard(h).put(h, Record::Live(live));
        };
        // Room for the new id first (taking the old record out may have made it): both
        // refusals below leave the session as it was, under its old id.
        match table.shard(hn).make_room(1, now) {
            Err(_) => {
                put_back(live);
                return StoreCall::ready(Err(full()));
            }
            Ok(n) if live.user.is_none() => crate::metrics::anonymous_evicted(n),
            Ok(_) => {}
        }
        if !apply(&mut live, changes, rules.max_session_bytes) {
            put_back(live);
            return StoreCall::ready(Ok(Saved::TooLarge));
        }
        live.key = *new;
        live.rotated = now;
        touch(&mut live, now, rules);
        let expires = live.expires;
        let has_user = live.user.is_some();
        table.shard(hn).put(hn, Record::Live(live));
        if !grace.is_zero() {
            let h = inner.slot(old);
            let until = now.saturating_add(micros(grace)).min(expires);
            let alias = Record::Alias {
                key: *old,
                to: *new,
                until,
            };
            // Room was made when the old record was taken out; a failure only shortens the
            // grace window to nothing.
            let _ = table.shard(h).insert(h, alias, now);
        }
        if has_user {
            let moved = inner
                .members(old.group(), now)
                .into_iter()
                .map(|(id, abs)| {
                    if id == *old.id() {
                        (*new.id(), abs)
                    } else {
                        (id, abs)
                    }
                })
                .collect();
            let members = inner.live_members(old.group(), moved, now);
            let _ = inner.set_index(old.group(), members, now);
        }
        StoreCall::ready(Ok(Saved::Done))
    }

    fn incr(
        &self,
        key: &SessionKey,
        field: &str,
        by: i64,
        rules: &SessionRules,
    ) -> StoreCall<Incremented> {
        let inner = &self.inner;
        let _order = inner.read();
        let now = inner.now();
        let result = inner.with_live(key, now, |live| {
            let current = match live.fields.iter().find(|(k, _)| k == field) {
                None => 0,
                Some((_, v)) => match std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(n) => n,
                    None => return Incremented::NotAnInteger,
                },
            };
            let Some(next) = current.checked_add(by) else {
                return Incremented::NotAnInteger;
            };
            let mut changes = Changes::default();
            changes
                .set
                .push((field.to_owned(), Bytes::from(next.to_string())));
            if !apply(live, &changes, rules.max_session_bytes) {
                return Incremented::TooLarge;
            }
            touch(live, now, rules);
            Incremented::Value(next)
        });
        StoreCall::ready(Ok(result.unwrap_or(Incremented::Gone)))
    }

    fn delete(&self, key: &SessionKey) -> StoreCall<()> {
        let inner = &self.inner;
        let _order = inner.write();
        let now = inner.now();
        if let Some(live) = inner.remove_session(key, now)
            && live.user.is_some()
        {
            let members = inner.prune(key.group(), now);
            let _ = inner.set_index(key.group(), members, now);
        }
        StoreCall::ready(Ok(()))
    }

    fn list(&self, group: &[u8; 16]) -> StoreCall<Vec<SessionInfo>> {
        let inner = &self.inner;
        let _order = inner.write();
        let now = inner.now();
        let members = inner.prune(group, now);
        let mut out = Vec::with_capacity(members.len());
        for (id, _) in &members {
            let key = SessionKey::new(*group, *id);
            let info = inner.with_live(&key, now, |live| SessionInfo {
                handle: key.handle(),
                created: inner.wall(live.created),
                last_seen: inner.wall(live.seen),
                expires: inner.wall(live.expires),
                ip: live.ip.clone(),
                user_agent: live.user_agent.clone(),
                current: false,
            });
            out.extend(info);
        }
        let result = inner.set_index(group, members, now).map(|()| out);
        StoreCall::ready(result)
    }

    fn revoke(&self, group: &[u8; 16], which: Revoke) -> StoreCall<u64> {
        let inner = &self.inner;
        let _order = inner.write();
        let now = inner.now();
        let mut members = inner.prune(group, now);
        let mut ended = 0;
        members.retain(|(id, _)| {
            let end = match which {
                Revoke::One(one) => *id == one,
                Revoke::All => true,
                Revoke::AllExcept(keep) => *id != keep,
            };
            if end
                && inner
                    .remove_session(&SessionKey::new(*group, *id), now)
                    .is_some()
            {
                ended += 1;
            }
            !end
        });
        let result = inner.set_index(group, members, now).map(|()| ended);
        StoreCall::ready(result)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.inner.sessions.len())
            .field("capacity", &self.inner.sessions.capacity())
            .field("anonymous_len", &self.inner.anonymous.len())
            .field("anonymous_capacity", &self.inner.anonymous.capacity())
            .finish()
    }
}
