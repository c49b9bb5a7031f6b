//! Sessions in Redis (standalone or Cluster), shared by every instance.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parapet_core::{
    Command, HashTag, KeyPrefix, KeySecret, Keyspace, RedisHandle, Script, ScriptCall, StoreCall,
    StoreError,
};

use super::{
    Changes, Created, Incremented, Loaded, NewSession, Revoke, Saved, SessionStore, sealed_user,
};
use crate::session_key::{hex, unhex};
use crate::session_rules::millis;
use crate::{OverLimit, SessionInfo, SessionKey, SessionRules};

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/prelude.lua"),
                include_str!($file)
            ))
        })
    };
}

static TOUCH: LazyLock<Script> = script!("scripts/touch.lua");
static SAVE: LazyLock<Script> = script!("scripts/save.lua");
static CREATE: LazyLock<Script> = script!("scripts/create.lua");
static ROTATE: LazyLock<Script> = script!("scripts/rotate.lua");
static INCR: LazyLock<Script> = script!("scripts/incr.lua");
static DELETE: LazyLock<Script> = script!("scripts/delete.lua");
static LIST: LazyLock<Script> = script!("scripts/list.lua");
static REVOKE: LazyLock<Script> = script!("scripts/revoke.lua");

/// Sessions in Redis, shared by every instance of a service.
///
/// - One hash per session, `{prefix}:sess:{group tag}:<digest>`: one field per data field
///   (so a request writes only the fields it changed), plus metadata. The digest is
///   SHA-256 of the cookie's secret: a Redis dump holds no usable id.
/// - One sorted set per user, `{prefix}:sessu:{group tag}:idx`, of the user's sessions
///   scored by their absolute expiry in µs (so creation order is kept within a ms). A user's sessions share the index's hash tag, so on
///   Cluster one script limits, lists or revokes them all. Dead members are dropped when
///   the index is used; the index expires with its longest-lived session.
/// - Anonymous sessions go to one of 16 fixed groups, each with a sorted set
///   `{prefix}:sessa:{group tag}:idx` of its sessions by creation, which keeps the group
///   within its share of the [`anonymous_budget`](Self::anonymous_budget).
/// - A read is one `HGETALL`. Every write is one `EVALSHA` that takes its time from Redis
///   `TIME`; every key has a TTL: the idle expiry, never past the absolute one.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use parapet_core::RedisHandle;
/// use parapet_session::{RedisStore, SessionLayer};
///
/// let redis = RedisHandle::builder("redis://127.0.0.1:6379").build().await?;
/// let layer = SessionLayer::builder().store(RedisStore::new(redis)?).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    redis: RedisHandle,
    keyspace: Keyspace,
    anonymous_budget: usize,
    /// A key secret was set: user ids are stored sealed (see `sealed_user`).
    sealed: bool,
    /// Round-robin over the anonymous groups.
    next_anonymous: Arc<AtomicUsize>,
}

/// Anonymous sessions are spread over this many groups, each with an index of its own
/// (one Cluster slot each), so that one script can keep a group within its share of the
/// budget.
const ANONYMOUS_GROUPS: usize = 16;

impl RedisStore {
    /// A store on `redis`, with key prefix `parapet` and a deadline per call of 100 ms (or
    /// the handle's own, if shorter).
    pub fn new(redis: RedisHandle) -> Result<Self, StoreError> {
        let timeout = DEFAULT_TIMEOUT.min(redis.timeout());
        Ok(Self {
            redis: redis.with_timeout(timeout)?,
            keyspace: Keyspace::default(),
            anonymous_budget: 100_000,
            sealed: false,
            next_anonymous: Arc::default(),
        })
    }

    /// At most about `n` anonymous sessions (default 100,000; 0: no bound), so that a flood
    /// of cookie-less writes cannot fill a Redis that the limiter and the revocations share.
    /// The budget counts sessions, not bytes: a one-item cart costs about 400 bytes of
    /// Redis, a session filled to `max_session_bytes` that much more; lower `n` or the byte
    /// limit to fit your Redis. On Cluster the 16 groups are 16 hash slots, so anonymous
    /// sessions sit on the nodes that hold those slots.
    /// Anonymous sessions are spread over 16 groups of `n / 16` each (rounded up); a new
    /// one in a full group evicts that group's oldest-made anonymous session (counted in
    /// [`ANONYMOUS_EVICTED`](crate::metrics::ANONYMOUS_EVICTED)). Logged-in sessions are
    /// never evicted for them and do not count.
    #[must_use]
    pub fn anonymous_budget(mut self, n: usize) -> Self {
        self.anonymous_budget = n;
        self
    }

    fn anonymous_index_key(&self, group: &[u8; 16]) -> String {
        self.keyspace.key("sessa", &HashTag::of(group), "idx")
    }

    /// The first part of every key (default `parapet`).
    #[must_use]
    pub fn prefix(mut self, prefix: KeyPrefix) -> Self {
        self.keyspace = self.keyspace.with_prefix(prefix);
        self
    }

    /// User groups become HMAC-SHA-256 of the user id under `secret`. Set one: the group is
    /// the last part of a logged-in cookie and of its Redis keys, and without a secret it is
    /// a plain SHA-256 of the user id, which anyone holding a cookie (or a key listing) can
    /// check against guesses ("alice"). With a secret the user id stored in the session
    /// (`m:user`) is sealed too (an encryption keyed by the secret), so a dump of Redis names
    /// no user; sessions written before the secret was set still read.
    #[must_use]
    pub fn key_secret(mut self, secret: KeySecret) -> Self {
        self.keyspace = self.keyspace.with_secret(secret);
        self.sealed = true;
        self
    }

    /// The deadline of one call (default 100 ms): above zero and at most the handle's own.
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, StoreError> {
        self.redis = self.redis.with_timeout(timeout)?;
        Ok(self)
    }

    fn session_key(&self, key: &SessionKey) -> String {
        self.keyspace
            .key("sess", &HashTag::of(key.group()), &hex(key.id()))
    }

    /// The prefix of every session key of a group: `{prefix}:sess:{tag}`.
    fn base(&self, group: &[u8; 16]) -> String {
        self.keyspace.key("sess", &HashTag::of(group), "")
    }

    fn index_key(&self, group: &[u8; 16]) -> String {
        self.keyspace.key("sessu", &HashTag::of(group), "idx")
    }

    /// Runs `call` and reads its reply with `read`.
    fn eval<R, T>(&self, call: ScriptCall, read: fn(R) -> Result<T, StoreError>) -> StoreCall<T>
    where
        R: parapet_core::FromReply + Send + 'static,
        T: Send + 'static,
    {
        let redis = self.redis.clone();
        StoreCall::boxed(async move { read(redis.eval(&call).await?) })
    }
}

fn push_changes(call: &mut ScriptCall, changes: &Changes) {
    call.arg(if changes.clear { "1" } else { "0" })
        .arg(changes.set.len());
    for (name, value) in &changes.set {
        call.arg(name.as_str()).arg(value.as_ref());
    }
    call.arg(changes.remove.len());
    for name in &changes.remove {
        call.arg(name.as_str());
    }
}

fn wall(ms: &[u8]) -> SystemTime {
    let ms = std::str::from_utf8(ms)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn text(bytes: Vec<u8>) -> Option<String> {
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads an `HGETALL` of a session: `None` when it is empty, a rotation alias (`Err` with
/// the digest it points to), or the session and its last touch (ms). `user` opens `m:user`.
fn parse(
    key: SessionKey,
    reply: Vec<Vec<u8>>,
    user: impl Fn(&[u8]) -> Option<String>,
) -> Result<Option<(Loaded, u64)>, [u8; 16]> {
    if reply.is_empty() {
        return Ok(None);
    }
    let mut out = Loaded::new(key, UNIX_EPOCH);
    out.now = SystemTime::now();
    let mut seen = None;
    let mut items = reply.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        if let Some(data) = name.strip_prefix(b"d:") {
            out.fields.push((
                String::from_utf8_lossy(data).into_owned(),
                Bytes::from(value),
            ));
            continue;
        }
        match name.as_slice() {
            b"m:alias" => {
                return std::str::from_utf8(&value)
                    .ok()
                    .and_then(unhex)
                    .map_or(Ok(None), Err);
            }
            b"m:seen" => seen = millis_of(&value),
            b"m:user" => out.user = user(&value),
            b"m:created" => out.created = wall(&value),
            b"m:rot" => out.rotated = wall(&value),
            b"m:ip" => out.ip = text(value),
            b"m:ua" => out.user_agent = text(value),
            _ => {}
        }
    }
    // A hash without `m:seen` is not a whole session (a key of someone else's): none.
    Ok(seen.map(|seen| (out, seen)))
}

fn millis_of(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

impl SessionStore for RedisStore {
    /// One `HGETALL` (no script: the cheapest read Redis has). Following a rotation alias
    /// costs a second; moving the idle expiry, when the last move is older than
    /// `touch_after` by this instance's clock, a `touch` script (the expiry itself is
    /// computed from Redis time).
    fn load(&self, key: &SessionKey, rules: &SessionRules) -> StoreCall<Option<Loaded>> {
        let store = self.clone();
        let key = *key;
        let rules = *rules;
        StoreCall::boxed(async move {
            let mut target = key;
            let mut found = None;
            for _ in 0..2 {
                let mut hgetall = Command::new("HGETALL");
                hgetall.arg(store.session_key(&target));
                let open = |value: &[u8]| {
                    sealed_user::open(&store.keyspace, store.sealed, target.group(), value)
                };
                match parse(target, store.redis.query(&hgetall).await?, open) {
                    Ok(loaded) => {
                        found = loaded;
                        break;
                    }
                    // Only the id asked for may be an alias; an alias of an alias is none.
                    Err(to) if target == key => target = SessionKey::new(*key.group(), to),
                    Err(_) => break,
                }
            }
            let Some((loaded, seen)) = found else {
                return Ok(None);
            };
            let now = millis(loaded.now.duration_since(UNIX_EPOCH).unwrap_or_default());
            if now.saturating_sub(seen) >= rules.touch_after_ms() {
                let mut call = TOUCH.call(1);
                call.key(store.session_key(&target)).arg(rules.idle_ms());
                // A failed touch leaves the expiry where it was: the read still stands.
                if let Err(e) = store.redis.eval::<i64>(&call).await {
                    crate::metrics::store_error("touch", &e);
                }
            }
            Ok(Some(loaded))
        })
    }

    fn save(&self, key: &SessionKey, changes: &Changes, rules: &SessionRules) -> StoreCall<Saved> {
        let mut call = SAVE.call(1);
        call.key(self.session_key(key))
            .arg(rules.idle_ms())
            .arg(rules.max_session_bytes)
            .arg(rules.touch_after_ms());
        push_changes(&mut call, changes);
        self.eval(call, |reply: i64| match reply {
            1 => Ok(Saved::Done),
            0 => Ok(Saved::Gone),
            2 => Ok(Saved::TooLarge),
            _ => Err(StoreError::UnexpectedReply("session save")),
        })
    }

    fn create(
        &self,
        key: &SessionKey,
        session: &NewSession,
        rules: &SessionRules,
    ) -> StoreCall<Created> {
        let (limit, policy) = match session.limit {
            Some((n, OverLimit::RejectNew)) => (n, "reject"),
            Some((n, _)) => (n, "evict"),
            None => (0, "evict"),
        };
        let anonymous = session.user.is_none();
        let mut call = CREATE.call(2);
        call.key(self.session_key(key))
            .key(if anonymous {
                self.anonymous_index_key(key.group())
            } else {
                self.index_key(key.group())
            })
            .arg(rules.idle_ms())
            .arg(rules.absolute_ms())
            .arg(rules.max_session_bytes)
            .arg(
                session
                    .user
                    .as_deref()
                    .map(|u| sealed_user::seal(&self.keyspace, self.sealed, key.group(), u))
                    .unwrap_or_default()
                    .as_slice(),
            )
            .arg(limit)
            .arg(policy)
            .arg(session.ip.as_deref().unwrap_or(""))
            .arg(session.user_agent.as_deref().unwrap_or(""))
            .arg(self.base(key.group()))
            .arg(session.replaces.as_ref().map(hex).unwrap_or_default())
            .arg(self.anonymous_budget.div_ceil(ANONYMOUS_GROUPS));
        push_changes(&mut call, &session.changes);
        let read = if anonymous {
            read_created_anonymous
        } else {
            read_created
        };
        self.eval(call, read)
    }

    fn rotate(
        &self,
        old: &SessionKey,
        new: &SessionKey,
        changes: &Changes,
        grace: Duration,
        rules: &SessionRules,
    ) -> StoreCall<Saved> {
        let mut call = ROTATE.call(4);
        call.key(self.session_key(old))
            .key(self.session_key(new))
            .key(self.index_key(old.group()))
            .key(self.anonymous_index_key(old.group()))
            .arg(rules.idle_ms())
            .arg(millis(grace))
            .arg(rules.max_session_bytes);
        push_changes(&mut call, changes);
        self.eval(call, |reply: i64| match reply {
            1 => Ok(Saved::Done),
            0 => Ok(Saved::Gone),
            2 => Ok(Saved::TooLarge),
            -2 => Ok(Saved::Collision),
            _ => Err(StoreError::UnexpectedReply("session rotate")),
        })
    }

    fn incr(
        &self,
        key: &SessionKey,
        field: &str,
        by: i64,
        rules: &SessionRules,
    ) -> StoreCall<Incremented> {
        let mut call = INCR.call(1);
        call.key(self.session_key(key))
            .arg(rules.idle_ms())
            .arg(rules.max_session_bytes)
            .arg(field)
            .arg(by)
            .arg(rules.touch_after_ms());
        self.eval(call, |reply: Vec<String>| {
            let reply: Vec<&str> = reply.iter().map(String::as_str).collect();
            match reply.as_slice() {
                ["1", value] => value
                    .parse()
                    .map(Incremented::Value)
                    .map_err(|_| StoreError::UnexpectedReply("session incr value")),
                ["0"] => Ok(Incremented::Gone),
                ["2"] => Ok(Incremented::TooLarge),
                ["3"] => Ok(Incremented::NotAnInteger),
                _ => Err(StoreError::UnexpectedReply("session incr")),
            }
        })
    }

    fn delete(&self, key: &SessionKey) -> StoreCall<()> {
        let mut call = DELETE.call(3);
        call.key(self.session_key(key))
            .key(self.index_key(key.group()))
            .key(self.anonymous_index_key(key.group()));
        self.eval(call, |_: i64| Ok(()))
    }

    fn list(&self, group: &[u8; 16]) -> StoreCall<Vec<SessionInfo>> {
        let mut call = LIST.call(1);
        call.key(self.index_key(group)).arg(self.base(group));
        self.eval(call, |reply: Vec<Vec<u8>>| {
            let mut out = Vec::new();
            for row in reply.get(1..).unwrap_or_default().chunks_exact(6) {
                out.push(SessionInfo {
                    handle: String::from_utf8_lossy(&row[0]).into_owned(),
                    created: wall(&row[1]),
                    last_seen: wall(&row[2]),
                    expires: wall(&row[3]),
                    ip: text(row[4].clone()),
                    user_agent: text(row[5].clone()),
                    current: false,
                });
            }
            Ok(out)
        })
    }

    fn revoke(&self, group: &[u8; 16], which: Revoke) -> StoreCall<u64> {
        let (mode, handle) = match which {
            Revoke::One(id) => ("one", hex(&id)),
            Revoke::All => ("all", String::new()),
            Revoke::AllExcept(id) => ("except", hex(&id)),
        };
        let mut call = REVOKE.call(1);
        call.key(self.index_key(group))
            .arg(self.base(group))
            .arg(mode)
            .arg(handle);
        self.eval(call, Ok)
    }

    fn user_group(&self, user: &str) -> [u8; 16] {
        *self.keyspace.tag(user.as_bytes()).as_bytes()
    }

    fn anonymous_group(&self) -> Option<[u8; 16]> {
        let n = self.next_anonymous.fetch_add(1, Ordering::Relaxed) % ANONYMOUS_GROUPS;
        Some(*HashTag::of(format!("parapet anonymous sessions {n}").as_bytes()).as_bytes())
    }
}

fn read_created(reply: i64) -> Result<Created, StoreError> {
    match reply {
        n if n >= 0 => Ok(Created::Done {
            evicted: u32::try_from(n).unwrap_or(u32::MAX),
        }),
        -1 => Ok(Created::TooLarge),
        -2 => Ok(Created::Collision),
        -3 => Ok(Created::OverLimit),
        _ => Err(StoreError::UnexpectedReply("session create")),
    }
}

/// An anonymous create's evictions are of other anonymous sessions, not of a user's.
fn read_created_anonymous(reply: i64) -> Result<Created, StoreError> {
    if let Ok(n) = usize::try_from(reply) {
        crate::metrics::anonymous_evicted(n);
        return Ok(Created::Done { evicted: 0 });
    }
    read_created(reply)
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.redis)
            .field("prefix", &self.keyspace.prefix().as_str())
            .finish()
    }
}
