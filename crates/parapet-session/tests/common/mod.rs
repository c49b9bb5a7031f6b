//! Stores on every backend, a test app, and a client that keeps its cookie.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::{delete, get, post};
use http_body_util::BodyExt;
use parapet_core::{KeyPrefix, ManualClock, RedisHandle, StoreCall};
use parapet_session::store::{Created, Incremented, Loaded, NewSession, Revoke, Saved};
use parapet_session::{
    Changes, ExistingSession, MemoryStore, RedisStore, Session, SessionError, SessionInfo,
    SessionKey, SessionLayer, SessionLayerBuilder, SessionRules, SessionStore,
};
use parapet_testkit::{RedisCluster, RedisServer};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    Cluster,
}

static PREFIX: AtomicUsize = AtomicUsize::new(0);

pub async fn handle(backend: Backend) -> RedisHandle {
    let builder = match backend {
        Backend::Memory => unreachable!("no redis for the memory backend"),
        Backend::Redis => RedisHandle::builder(RedisServer::shared().url().as_str()),
        Backend::Cluster => RedisHandle::cluster(RedisCluster::shared().urls()),
    };
    builder
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
}

/// A fresh key prefix, so tests on one server do not see each other's keys.
pub fn prefix() -> String {
    format!("s{}", PREFIX.fetch_add(1, Ordering::SeqCst))
}

/// A store on `backend` under a prefix of its own; memory runs on `clock`.
pub async fn store_with(
    backend: Backend,
    clock: &ManualClock,
    prefix: &str,
) -> Arc<dyn SessionStore> {
    match backend {
        Backend::Memory => Arc::new(MemoryStore::new().clock(clock.clone())),
        _ => Arc::new(
            RedisStore::new(handle(backend).await)
                .unwrap()
                .timeout(Duration::from_secs(2))
                .unwrap()
                .prefix(KeyPrefix::new(prefix).unwrap()),
        ),
    }
}

pub async fn store(backend: Backend) -> Arc<dyn SessionStore> {
    store_with(backend, &ManualClock::new(), &prefix()).await
}

/// Moves time on: the manual clock of a memory store, real time for Redis (which keeps
/// its own).
pub async fn advance(backend: Backend, clock: &ManualClock, by: Duration) {
    match backend {
        Backend::Memory => clock.advance(by),
        _ => tokio::time::sleep(by).await,
    }
}

/// Counts the calls a store gets, by operation.
pub struct Counting {
    pub inner: Arc<dyn SessionStore>,
    pub calls: Mutex<Vec<&'static str>>,
}

impl Counting {
    pub fn new(inner: Arc<dyn SessionStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: Mutex::default(),
        })
    }
    pub fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn note(&self, op: &'static str) {
        self.calls.lock().unwrap().push(op);
    }
}

impl SessionStore for Counting {
    fn load(&self, key: &SessionKey, rules: &SessionRules) -> StoreCall<Option<Loaded>> {
        self.note("load");
        self.inner.load(key, rules)
    }
    fn save(&self, key: &SessionKey, changes: &Changes, rules: &SessionRules) -> StoreCall<Saved> {
        self.note("save");
        self.inner.save(key, changes, rules)
    }
    fn create(
        &self,
        key: &SessionKey,
        session: &NewSession,
        rules: &SessionRules,
    ) -> StoreCall<Created> {
        self.note("create");
        self.inner.create(key, session, rules)
    }
    fn rotate(
        &self,
        old: &SessionKey,
        new: &SessionKey,
        changes: &Changes,
        grace: Duration,
        rules: &SessionRules,
    ) -> StoreCall<Saved> {
        self.note("rotate");
        self.inner.rotate(old, new, changes, grace, rules)
    }
    fn incr(
        &self,
        key: &SessionKey,
        field: &str,
        by: i64,
        rules: &SessionRules,
    ) -> StoreCall<Incremented> {
        self.note("incr");
        self.inner.incr(key, field, by, rules)
    }
    fn delete(&self, key: &SessionKey) -> StoreCall<()> {
        self.note("delete");
        self.inner.delete(key)
    }
    fn list(&self, group: &[u8; 16]) -> StoreCall<Vec<SessionInfo>> {
        self.note("list");
        self.inner.list(group)
    }
    fn revoke(&self, group: &[u8; 16], which: Revoke) -> StoreCall<u64> {
        self.note("revoke");
        self.inner.revoke(group, which)
    }
    fn user_group(&self, user: &str) -> [u8; 16] {
        self.inner.user_group(user)
    }
    fn anonymous_group(&self) -> Option<[u8; 16]> {
        self.inner.anonymous_group()
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// The routes the tests drive, on a layer built by `builder`.
pub fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/untouched", get(|| async { "hello" }))
        .route(
            "/login/{user}",
            post(|session: Session, Path(user): Path<String>| async move {
                session.set_user(&user).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/me",
            get(|session: ExistingSession| async move {
                let user = session.user().await?;
                Ok::<_, SessionError>(json(&user))
            }),
        )
        .route(
            "/visit",
            post(|session: Session| async move {
                let n = session.incr("visits", 1).await?;
                Ok::<_, SessionError>(n.to_string())
            }),
        )
        .route(
            "/put/{name}",
            post(|session: Session, Path(name): Path<String>, body: String| async move {
                session.insert(&name, &body).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/get/{name}",
            get(|session: Session, Path(name): Path<String>| async move {
                let value: Option<String> = session.get(&name).await?;
                Ok::<_, SessionError>(json(&value))
            }),
        )
        .route(
            "/keys",
            get(|session: Session| async move {
                Ok::<_, SessionError>(json(&session.keys().await?))
            }),
        )
        .route(
            "/rotate",
            post(|session: Session| async move {
                session.rotate().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/logout",
            post(|session: Session| async move {
                session.destroy().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/sessions",
            get(|session: Session| async move {
                let list = session.sessions().await?;
                let rows: Vec<(String, bool, Option<String>)> = list
                    .into_iter()
                    .map(|s| (s.handle, s.current, s.user_agent))
                    .collect();
                Ok::<_, SessionError>(json(&rows))
            }),
        )
        .route(
            "/sessions/others",
            delete(|session: Session| async move {
                Ok::<_, SessionError>(session.revoke_others().await?.to_string())
            }),
        )
        .route(
            "/fail",
            post(|session: Session| async move {
                session.insert("lost", &1).await?;
                Ok::<_, SessionError>((StatusCode::INTERNAL_SERVER_ERROR, "boom"))
            }),
        )
        .layer(layer)
}

/// The layer over `store`, with a store deadline (2 s) that a loaded test machine does not
/// miss; the fault tests, which are about the deadline, set their own in `build`.
pub fn layer(
    store: Arc<dyn SessionStore>,
    build: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> SessionLayer {
    let builder = SessionLayer::builder()
        .store(store)
        .store_timeout(std::time::Duration::from_secs(2));
    build(builder).build().unwrap()
}

/// A response read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn set_cookie(&self) -> Option<String> {
        self.headers
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

/// A client with a cookie jar of one cookie.
#[derive(Clone)]
pub struct Client {
    pub app: Router,
    pub cookie: Arc<Mutex<Option<String>>>,
    pub user_agent: &'static str,
}

impl Client {
    pub fn new(app: Router) -> Self {
        Self {
            app,
            cookie: Arc::default(),
            user_agent: "test-agent",
        }
    }

    /// Another client that holds the same cookie (another tab, or a thief).
    pub fn same_cookie(&self, app: Router) -> Self {
        Self {
            app,
            cookie: Arc::new(Mutex::new(self.cookie())),
            user_agent: self.user_agent,
        }
    }

    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    pub fn set_cookie_value(&self, value: Option<String>) {
        *self.cookie.lock().unwrap() = value;
    }

    pub async fn send(&self, method: &str, path: &str, body: &str) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("user-agent", self.user_agent);
        if let Some(cookie) = self.cookie() {
            request = request.header("cookie", cookie);
        }
        let reply = self
            .raw(request.body(Body::from(body.to_owned())).unwrap())
            .await;
        if let Some(set) = reply.set_cookie() {
            let pair = set.split(';').next().unwrap().to_owned();
            let removed = set.contains("Max-Age=0");
            self.set_cookie_value((!removed).then_some(pair));
        }
        reply
    }

    pub async fn raw(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// Runs each named `async fn(Backend)` as a test on memory, standalone Redis and Cluster.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Memory).await })*
        }
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Redis).await })*
        }
        mod cluster {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Cluster).await })*
        }
    };
}
