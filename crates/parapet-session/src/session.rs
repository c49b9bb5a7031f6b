//! The session handle a request carries.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, MutexGuard};

use parapet_core::{Personal, PersonalInput};

use crate::id::SessionId;
use crate::metrics;
use crate::session_key::unhex;
use crate::shared::Shared;
use crate::store::{Changes, Created, Incremented, Loaded, NewSession, Revoke, Saved};
use crate::{SessionError, SessionInfo, SessionKey, SessionStore};

/// Longest field name.
const MAX_NAME: usize = 128;
/// Most bytes of a `User-Agent` recorded.
const MAX_USER_AGENT: usize = 256;
/// Attempts at a fresh id when the store says it is taken (a 2⁻¹²⁸ event).
const ID_ATTEMPTS: usize = 3;

/// The session of one request, put in its extensions by [`SessionLayer`](crate::SessionLayer).
///
/// Lazy: nothing is read from the store until a method needs it, and a request that never
/// calls one does no store I/O and sets no cookie. A read ([`get`](Self::get),
/// [`user`](Self::user)) loads the whole session once per request, one round trip; writes
/// ([`insert`](Self::insert), [`remove`](Self::remove), [`clear`](Self::clear)) are kept
/// and written after the handler in one round trip, **field by field**: two concurrent
/// requests that change different fields both keep their change. [`incr`](Self::incr),
/// [`set_user`](Self::set_user), [`rotate`](Self::rotate) and [`destroy`](Self::destroy)
/// act at once, as their answer depends on the store.
///
/// Values are JSON (serde). Clones share the same state; changes made through a clone after
/// the response was sent (a spawned task) are not written.
///
/// ```
/// # async fn handler(session: parapet_session::Session) -> Result<String, parapet_session::SessionError> {
/// session.insert("theme", "dark").await?;
/// let visits = session.incr("visits", 1).await?;
/// let theme: Option<String> = session.get("theme").await?;
/// # Ok(format!("{visits} {theme:?}")) }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

/// The session cookie a request came with, read only when a handler asks.
pub(crate) enum RequestCookie {
    Absent,
    /// One `Cookie` line, not parsed yet.
    Line(HeaderValue),
    /// Several lines (rare): parsed at once.
    Parsed(Option<SessionId>),
}

struct Inner {
    shared: Arc<Shared>,
    used: AtomicBool,
    cookie: RequestCookie,
    /// The well-formed session id the request came with, once read.
    request_id: std::sync::OnceLock<Option<SessionId>>,
    /// The request's mark, set with `used`: what the handler answers depends on the session,
    /// so no cache, on either side of this layer, may store it.
    personal: Personal,
    ip: Option<IpAddr>,
    user_agent: Option<HeaderValue>,
    state: Mutex<State>,
}

struct State {
    /// `id` was set from the request's cookie (on the first use).
    started: bool,
    /// The id the client holds, or was given during this request.
    id: Option<SessionId>,
    /// Where the session's record is: the id's key, or where a rotation moved it.
    key: Option<SessionKey>,
    record: Record,
    /// Pending writes, one per name: a value, or `None` to remove.
    changes: BTreeMap<String, Option<Bytes>>,
    clear: bool,
    cookie: CookieAction,
    /// The session was read: the response depends on the cookie.
    read: bool,
}

enum Record {
    /// Not read yet.
    Unknown,
    /// There is no session (no cookie, an unknown id, or it was ended).
    Missing,
    Present(Data),
}

struct Data {
    /// As the store returned them: a session holds few fields, and a read looks one up, so
    /// a list searched in order costs less than building a map on every load.
    fields: Vec<(String, Bytes)>,
    user: Option<String>,
    /// How long ago the id was issued, by the store's clock, when it was read.
    age: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CookieAction {
    Keep,
    Set,
    Remove,
}

/// What the response needs after the writes.
pub(crate) struct Flushed {
    pub(crate) set_cookie: Option<HeaderValue>,
    pub(crate) vary_cookie: bool,
    pub(crate) error: Option<SessionError>,
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        cookie: RequestCookie,
        ip: Option<IpAddr>,
        user_agent: Option<HeaderValue>,
        personal: Personal,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                used: AtomicBool::new(false),
                cookie,
                request_id: std::sync::OnceLock::new(),
                personal,
                ip,
                user_agent,
                state: Mutex::new(State {
                    started: false,
                    id: None,
                    key: None,
                    record: Record::Unknown,
                    changes: BTreeMap::new(),
                    clear: false,
                    cookie: CookieAction::Keep,
                    read: false,
                }),
            }),
        }
    }

    /// The value of field `name`, as this request sees it (its own writes included).
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, SessionError> {
        let state = self.loaded().await?;
        state
            .value(name)
            .map(|bytes| serde_json::from_slice(bytes).map_err(SessionError::Deserialize))
            .transpose()
    }

    /// The names of the session's fields, as this request sees them, sorted.
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        let state = self.loaded().await?;
        let mut names: Vec<String> = match &state.record {
            Record::Present(data) if !state.clear => {
                data.fields.iter().map(|(name, _)| name.clone()).collect()
            }
            _ => Vec::new(),
        };
        names.retain(|name| !state.changes.contains_key(name));
        names.extend(
            state
                .changes
                .iter()
                .filter(|(_, change)| change.is_some())
                .map(|(name, _)| name.clone()),
        );
        names.sort_unstable();
        Ok(names)
    }

    /// Sets field `name` to `value` (written after the handler; creates the session, and
    /// its cookie, if there is none).
    pub async fn insert<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), SessionError> {
        check_name(name)?;
        let mut bytes = serde_json::to_vec(value).map_err(SessionError::Serialize)?;
        if name.len() + bytes.len() > self.inner.shared.rules.max_session_bytes {
            return Err(SessionError::TooLarge("value"));
        }
        // serde_json grows its buffer by doubling, and `Bytes` keeps the whole buffer: a
        // 1 KB value could hold 2 KB for as long as the session lives (the memory store).
        bytes.shrink_to_fit();
        let mut state = self.lock().await;
        state
            .changes
            .insert(name.to_owned(), Some(Bytes::from(bytes)));
        Ok(())
    }

    /// Removes field `name` (written after the handler).
    pub async fn remove(&self, name: &str) -> Result<(), SessionError> {
        check_name(name)?;
        self.lock().await.changes.insert(name.to_owned(), None);
        Ok(())
    }

    /// Removes every field (written after the handler). The session, its user and its id
    /// stay; [`destroy`](Self::destroy) ends it.
    pub async fn clear(&self) {
        let mut state = self.lock().await;
        state.changes.clear();
        state.clear = true;
    }

    /// Adds `by` to the integer in field `name` (absent counts as 0) and answers the new
    /// value, atomically in the store: concurrent requests never lose a count. One round
    /// trip on an existing session; on a new one, written with the other changes.
    pub async fn incr(&self, name: &str, by: i64) -> Result<i64, SessionError> {
        check_name(name)?;
        let mut state = self.loaded().await?;
        let pending = state.changes.contains_key(name) || state.clear;
        let key = match (&state.record, state.key) {
            (Record::Present(_), Some(key)) if !pending => key,
            _ => {
                let current = match state.value(name) {
                    None => 0,
                    Some(bytes) => integer(bytes).ok_or(SessionError::NotAnInteger)?,
                };
                let next = current.checked_add(by).ok_or(SessionError::NotAnInteger)?;
                state
                    .changes
                    .insert(name.to_owned(), Some(Bytes::from(next.to_string())));
                return Ok(next);
            }
        };
        let shared = &*self.inner.shared;
        let call = shared.store.incr(&key, name, by, &shared.rules);
        match shared.call("incr", call).await? {
            Incremented::Value(value) => {
                if let Record::Present(data) = &mut state.record {
                    data.set(name, Bytes::from(value.to_string()));
                }
                Ok(value)
            }
            Incremented::Gone => Err(state.ended()),
            Incremented::TooLarge => Err(SessionError::TooLarge("session")),
            Incremented::NotAnInteger => Err(SessionError::NotAnInteger),
        }
    }

    /// The user this session is bound to.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        let state = self.loaded().await?;
        Ok(match &state.record {
            Record::Present(data) => data.user.clone(),
            _ => None,
        })
    }

    /// True when the request has a live session (or made one).
    pub async fn exists(&self) -> Result<bool, SessionError> {
        let state = self.loaded().await?;
        Ok(matches!(state.record, Record::Present(_)))
    }

    /// Logs the session in as `user`, at once: a **new id** is issued and the old one dies
    /// (session fixation: an id known before login never carries the logged-in state).
    /// The fields of an anonymous session (a cart) carry over, as do those of a session of
    /// the same user; a session of another user carries nothing over. The session joins
    /// the user's index, applying [`max_sessions`](crate::SessionLayerBuilder::max_sessions).
    ///
    /// Round trips: a load (when not yet loaded), the create, and the removal of the old id.
    pub async fn set_user(&self, user: &str) -> Result<(), SessionError> {
        if user.is_empty() {
            return Err(SessionError::Empty("user id"));
        }
        if user.len() > MAX_NAME * 2 {
            return Err(SessionError::TooLarge("user id"));
        }
        let mut state = self.loaded().await?;
        let shared = &*self.inner.shared;
        let group = shared.store.user_group(user);
        let old = match &state.record {
            Record::Present(_) => state.key,
            _ => None,
        };
        // The same user logging in again: the store ends the old id in the create itself,
        // and it does not count toward the limit.
        let replaces = old.filter(|k| *k.group() == group).map(|k| *k.id());
        let carried = state.carried(user);
        let mut session = NewSession::default();
        session.changes.set = carried
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        session.user = Some(user.to_owned());
        session.limit = shared.max_sessions;
        session.ip = self.inner.ip.map(|ip| ip.to_string());
        session.user_agent = self.user_agent();
        session.replaces = replaces;
        let (id, key) = self.create(group, &session).await?;
        metrics::created("login");
        if let Some(old) = old.filter(|_| replaces.is_none()) {
            // An anonymous old id holds no login: if its removal fails, it ends by its idle
            // expiry. Another user's must not outlive the switch: that failure is an error.
            let was_logged_in = matches!(&state.record, Record::Present(d) if d.user.is_some());
            if let Err(e) = shared.call("delete", shared.store.delete(&old)).await {
                if was_logged_in {
                    return Err(e);
                }
                tracing::warn!(error = %e, "could not remove the pre-login session");
            }
        }
        state.id = Some(id);
        state.key = Some(key);
        state.record = Record::Present(Data {
            fields: carried.into_iter().collect(),
            user: Some(user.to_owned()),
            age: Duration::ZERO,
        });
        state.changes.clear();
        state.clear = false;
        state.cookie = CookieAction::Set;
        Ok(())
    }

    /// Issues a new id for this session at once, the old one dying at once: call it at any
    /// privilege change (a role granted, a password changed). No-op without a session.
    pub async fn rotate(&self) -> Result<(), SessionError> {
        let mut state = self.loaded().await?;
        let result = self
            .move_to_new_id(&mut state, Duration::ZERO, "privilege")
            .await;
        if let Err(SessionError::Gone) = result {
            return Err(state.ended());
        }
        result
    }

    /// Ends the session at once (logout): its record is deleted and the cookie removed.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        let mut state = self.loaded().await?;
        if let (Record::Present(_), Some(key)) = (&state.record, state.key) {
            let shared = &*self.inner.shared;
            shared.call("delete", shared.store.delete(&key)).await?;
        }
        state.forget();
        Ok(())
    }

    /// The live sessions of this session's user, oldest first, the current one marked.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let state = self.loaded().await?;
        let key = state.logged_in()?;
        let shared = &*self.inner.shared;
        let mut list = shared.call("list", shared.store.list(key.group())).await?;
        let current = key.handle();
        for info in &mut list {
            info.current = info.handle == current;
        }
        Ok(list)
    }

    /// Ends one of this user's sessions by its [`handle`](SessionInfo::handle); answers
    /// whether it was live. A handle of another user's session ends nothing.
    pub async fn revoke(&self, handle: &str) -> Result<bool, SessionError> {
        let mut state = self.loaded().await?;
        let key = state.logged_in()?;
        let Some(id) = unhex(handle) else {
            return Ok(false);
        };
        let shared = &*self.inner.shared;
        let ended = shared
            .call("revoke", shared.store.revoke(key.group(), Revoke::One(id)))
            .await?;
        if id == *key.id() {
            state.forget();
        }
        Ok(ended > 0)
    }

    /// Ends every other session of this user ("log out everywhere else"); answers how many.
    pub async fn revoke_others(&self) -> Result<u64, SessionError> {
        let state = self.loaded().await?;
        let key = state.logged_in()?;
        let shared = &*self.inner.shared;
        let which = Revoke::AllExcept(*key.id());
        shared
            .call("revoke", shared.store.revoke(key.group(), which))
            .await
    }

    /// True once any method was called: the layer then writes and sets cookies.
    /// The request came with a well-formed session id (it may still be unknown to the
    /// store). Without one there is nothing to read.
    pub(crate) fn has_id(&self) -> bool {
        self.request_id().is_some()
    }

    /// The well-formed session id of the request's cookie, read on the first call.
    fn request_id(&self) -> Option<&SessionId> {
        let inner = &self.inner;
        inner
            .request_id
            .get_or_init(|| match &inner.cookie {
                RequestCookie::Absent => None,
                RequestCookie::Line(line) => inner.shared.cookie_id_in(std::iter::once(line)),
                RequestCookie::Parsed(id) => id.clone(),
            })
            .as_ref()
    }

    /// The state, its id set from the request's cookie on the first use.
    async fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self.inner.state.lock().await;
        if !state.started {
            state.started = true;
            state.id = self.request_id().cloned();
        }
        state
    }

    pub(crate) fn was_used(&self) -> bool {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The request's mark of personal inputs (set once the session was used).
    pub(crate) fn personal(&self) -> &Personal {
        &self.inner.personal
    }

    /// Writes the request's pending changes (one round trip; none when `write` is false),
    /// rotating the id first when periodic rotation is due, and says what the response
    /// needs: the cookie to set or remove, and the error to answer with instead.
    pub(crate) async fn flush(&self, write: bool) -> Flushed {
        let mut state = self.state().await;
        let shared = &*self.inner.shared;
        if !write {
            state.changes.clear();
            state.clear = false;
        }
        let pending = !state.changes.is_empty() || state.clear;
        let due = match (&state.record, shared.rotate_every) {
            (Record::Present(data), Some(every)) => {
                write && data.user.is_some() && data.age >= every
            }
            _ => false,
        };
        let result = match due {
            // A concurrent request of the same session may have rotated it first (its old
            // id is then an alias): this one's writes follow it, without a second rotation.
            true => match self
                .move_to_new_id(&mut state, shared.rotation_grace, "periodic")
                .await
            {
                Err(SessionError::Gone) if state.key.is_some() => self.write(&mut state).await,
                other => other,
            },
            false if pending => self.write(&mut state).await,
            false => Ok(()),
        };
        Flushed {
            set_cookie: match state.cookie {
                CookieAction::Keep => None,
                CookieAction::Set => shared.set_cookie(state.id.as_ref()),
                CookieAction::Remove => shared.set_cookie(None),
            },
            vary_cookie: state.read,
            error: result.err(),
        }
    }

    async fn write(&self, state: &mut State) -> Result<(), SessionError> {
        let shared = &*self.inner.shared;
        let changes = state.take_changes();
        let target = match (&state.record, state.key, &state.id) {
            (Record::Missing, _, _) | (_, _, None) => None,
            (_, Some(key), _) => Some(key),
            (_, None, Some(id)) => Some(id.key()),
        };
        let Some(key) = target else {
            return self.write_new(state, changes).await;
        };
        let mut saved = shared
            .call("save", shared.store.save(&key, &changes, &shared.rules))
            .await?;
        if saved == Saved::Gone {
            // The id may have been rotated by a concurrent request, within its grace
            // window: reading follows the alias; write there.
            let loaded = shared
                .call("load", shared.store.load(&key, &shared.rules))
                .await?;
            match loaded {
                Some(loaded) if loaded.key != key => {
                    let moved = loaded.key;
                    state.key = Some(moved);
                    saved = shared
                        .call("save", shared.store.save(&moved, &changes, &shared.rules))
                        .await?;
                }
                // Written without a read, to an id the store does not know (expired, or
                // never was): as for a read, that is no session, and the writes start a
                // new one. A session this request read and that ended during it is 401.
                None if matches!(state.record, Record::Unknown) => {
                    metrics::unknown();
                    return self.write_new(state, changes).await;
                }
                _ => {}
            }
        }
        match saved {
            Saved::Done => Ok(()),
            Saved::TooLarge => Err(SessionError::TooLarge("session")),
            _ => Err(state.ended()),
        }
    }

    /// Creates an anonymous session holding the fields `changes` sets.
    async fn write_new(&self, state: &mut State, changes: Changes) -> Result<(), SessionError> {
        if changes.set.is_empty() {
            state.unknown();
            return Ok(());
        }
        let mut session = NewSession::default();
        session.changes.set = changes.set;
        session.ip = self.inner.ip.map(|ip| ip.to_string());
        session.user_agent = self.user_agent();
        let shared = &*self.inner.shared;
        let group = match shared.store.anonymous_group() {
            Some(group) => group,
            None => SessionId::generate(None).map_err(random_failed)?.group(),
        };
        let (id, key) = self.create(group, &session).await?;
        metrics::created("new");
        state.id = Some(id);
        state.key = Some(key);
        state.cookie = CookieAction::Set;
        Ok(())
    }

    /// Rotates the current session to a new id of the same group, with the pending changes.
    async fn move_to_new_id(
        &self,
        state: &mut State,
        grace: Duration,
        reason: &'static str,
    ) -> Result<(), SessionError> {
        let (Record::Present(_), Some(old)) = (&state.record, state.key) else {
            return Ok(());
        };
        let shared = &*self.inner.shared;
        let changes = state.take_changes();
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate(Some(*old.group())).map_err(random_failed)?;
            let new = id.key();
            let call = shared
                .store
                .rotate(&old, &new, &changes, grace, &shared.rules);
            match shared.call("rotate", call).await? {
                Saved::Done => {
                    metrics::rotated(reason);
                    if let Record::Present(data) = &mut state.record {
                        data.apply(&changes);
                        data.age = Duration::ZERO;
                    }
                    state.id = Some(id);
                    state.key = Some(new);
                    state.cookie = CookieAction::Set;
                    return Ok(());
                }
                Saved::Collision => continue,
                Saved::TooLarge => return Err(SessionError::TooLarge("session")),
                _ => {
                    // Gone from its old id: the caller decides whether the session moved
                    // (a concurrent rotation) or ended. The changes are still to write.
                    state.restore(changes);
                    return Err(SessionError::Gone);
                }
            }
        }
        Err(collision())
    }

    /// Creates a session in `group`, retrying on the (2⁻¹²⁸) chance its id is taken.
    async fn create(
        &self,
        group: [u8; 16],
        session: &NewSession,
    ) -> Result<(SessionId, SessionKey), SessionError> {
        let shared = &*self.inner.shared;
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate(Some(group)).map_err(random_failed)?;
            let key = id.key();
            let call = shared.store.create(&key, session, &shared.rules);
            let created = shared.call("create", call).await;
            if let (Err(SessionError::Store(_)), Some(_)) = (&created, &session.user) {
                // A login whose create failed late (a deadline passed, a connection broke)
                // may still run in the store: the client never gets that id, so take it out
                // again rather than let it count toward the user's sessions until it idles
                // out. Deleting an id that was never written is harmless. (An anonymous one
                // counts toward nothing, and the anonymous budget reclaims it.)
                undo_create(shared.store.clone(), key);
            }
            match created? {
                Created::Done { evicted } => {
                    metrics::evicted(evicted);
                    return Ok((id, key));
                }
                Created::Collision => continue,
                Created::OverLimit => {
                    metrics::rejected();
                    return Err(SessionError::TooManySessions);
                }
                _ => return Err(SessionError::TooLarge("session")),
            }
        }
        Err(collision())
    }

    async fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.used.store(true, Ordering::Relaxed);
        self.inner.personal.mark(PersonalInput::Session);
        self.state().await
    }

    /// The state, with the session read from the store if it was not yet.
    async fn loaded(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        let mut state = self.lock().await;
        if !matches!(state.record, Record::Unknown) {
            return Ok(state);
        }
        state.read = true;
        let Some(id) = &state.id else {
            state.record = Record::Missing;
            return Ok(state);
        };
        let key = id.key();
        let shared = &*self.inner.shared;
        let loaded: Option<Loaded> = shared
            .call("load", shared.store.load(&key, &shared.rules))
            .await?;
        match loaded {
            Some(loaded) => {
                state.key = Some(loaded.key);
                state.record = Record::Present(Data {
                    fields: loaded.fields,
                    user: loaded.user,
                    age: loaded
                        .now
                        .duration_since(loaded.rotated)
                        .unwrap_or_default(),
                });
            }
            None => {
                metrics::unknown();
                state.unknown();
            }
        }
        Ok(state)
    }

    fn user_agent(&self) -> Option<String> {
        let ua = self.inner.user_agent.as_ref()?.to_str().ok()?;
        let mut end = ua.len().min(MAX_USER_AGENT);
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        Some(ua[..end].to_owned())
    }
}

impl State {
    fn value(&self, name: &str) -> Option<&Bytes> {
        if let Some(change) = self.changes.get(name) {
            return change.as_ref();
        }
        match &self.record {
            Record::Present(data) if !self.clear => data.get(name),
            _ => None,
        }
    }

    /// Puts back changes [`take_changes`](Self::take_changes) took, for another attempt.
    fn restore(&mut self, changes: Changes) {
        self.clear = changes.clear;
        for (name, value) in changes.set {
            self.changes.insert(name, Some(value));
        }
        for name in changes.remove {
            self.changes.insert(name, None);
        }
    }

    fn take_changes(&mut self) -> Changes {
        let mut changes = Changes {
            clear: std::mem::take(&mut self.clear),
            ..Changes::default()
        };
        for (name, change) in std::mem::take(&mut self.changes) {
            match change {
                Some(value) => changes.set.push((name, value)),
                None => changes.remove.push(name),
            }
        }
        changes
    }

    /// The fields a login as `user` keeps: all of an anonymous session or one of the same
    /// user, with this request's changes; only this request's changes otherwise.
    fn carried(&self, user: &str) -> HashMap<String, Bytes> {
        let mut fields = match &self.record {
            Record::Present(data)
                if !self.clear && data.user.as_deref().is_none_or(|u| u == user) =>
            {
                data.fields.iter().cloned().collect()
            }
            _ => HashMap::new(),
        };
        for (name, change) in &self.changes {
            match change {
                Some(value) => fields.insert(name.clone(), value.clone()),
                None => fields.remove(name),
            };
        }
        fields
    }

    fn logged_in(&self) -> Result<SessionKey, SessionError> {
        match (&self.record, self.key) {
            (Record::Present(data), Some(key)) if data.user.is_some() => Ok(key),
            _ => Err(SessionError::NotLoggedIn),
        }
    }

    /// The cookie's id is not a session (expired, or never was): later writes start a new
    /// one. The cookie is left alone: a removal could race with, and delete, the cookie of
    /// a login answered to a concurrent request.
    fn unknown(&mut self) {
        self.id = None;
        self.key = None;
        self.record = Record::Missing;
    }

    /// The session is gone: the client's cookie is removed, and later writes start anew.
    fn forget(&mut self) {
        self.id = None;
        self.key = None;
        self.record = Record::Missing;
        self.changes.clear();
        self.clear = false;
        self.cookie = CookieAction::Remove;
    }

    fn ended(&mut self) -> SessionError {
        self.forget();
        SessionError::Gone
    }
}

impl Data {
    fn get(&self, name: &str) -> Option<&Bytes> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn set(&mut self, name: &str, value: Bytes) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name.to_owned(), value)),
        }
    }

    fn apply(&mut self, changes: &Changes) {
        if changes.clear {
            self.fields.clear();
        }
        for (name, value) in &changes.set {
            self.set(name, value.clone());
        }
        self.fields.retain(|(n, _)| !changes.remove.contains(n));
    }
}

fn check_name(name: &str) -> Result<(), SessionError> {
    if name.is_empty() {
        return Err(SessionError::Empty("field name"));
    }
    if name.len() > MAX_NAME {
        return Err(SessionError::TooLarge("field name"));
    }
    Ok(())
}

fn integer(bytes: &Bytes) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn random_failed(error: getrandom::Error) -> SessionError {
    tracing::error!(%error, "the OS random source failed");
    SessionError::Store(parapet_core::StoreError::InvalidConfig(
        "the OS random source failed".into(),
    ))
}

fn collision() -> SessionError {
    SessionError::Store(parapet_core::StoreError::UnexpectedReply(
        "the store reports every new session id as taken",
    ))
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Deletes a session whose create timed out, in case the store ran it late: at once (after
/// the create on the same connection), then twice more in case it ran later still.
fn undo_create(store: Arc<dyn SessionStore>, key: SessionKey) {
    tokio::spawn(async move {
        for wait in [0, 1, 4] {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            let deleted = store.delete(&key).within(Duration::from_secs(5)).await;
            if let Err(e) = deleted {
                tracing::debug!(error = %e, "could not undo a create that timed out");
            }
        }
    });
}
