//! The four middlewares on one axum app, as a service deploys them: rate limits, the
//! response cache, sessions and the JWT guard, sharing one Redis handle, one view of the
//! trusted proxies (`ClientIp`) and one key secret.
//!
//! ```text
//! cargo run --release --example stack                                   # in memory, :3010
//! REDIS_URL=redis://127.0.0.1:6379 PORT=3011 cargo run --release --example stack
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HOST`, `PORT` | where to listen (`0.0.0.0` for every interface) | `127.0.0.1`, 3010 |
//! | `REDIS_URL` | share limits, sessions and revocations through this Redis (`maxmemory-policy noeviction`: none of them may lose state) | in memory |
//! | `CACHE_REDIS_URL` | share the response cache through this Redis, one of its own (an eviction policy such as `allkeys-lru`): a cache fills whatever it is given, and on the first Redis it would push the others out of memory | the cache stays in each instance's memory |
//! | `TRUSTED_PROXIES` | comma-separated CIDRs of your load balancers: every layer then reads the client from `X-Forwarded-For`, and the cache keys the forwarded scheme, host and port | clients connect directly |
//! | `KEY_SECRET` | at least 16 bytes: Redis keys hold an HMAC of client addresses, session ids and keys | unset |
//! | `JWT_SECRET` | the HS256 secret (32 bytes or more); every instance needs the same | a development secret, with a warning |
//! | `RUST_LOG` | log filter | `info` |
//!
//! | route | what |
//! |---|---|
//! | `GET /products` | a slow (200 ms) catalog, cached for 30 s |
//! | `GET /cart`, `POST /cart/items/{id}` | a cart in the session, anonymous or logged in (60 a minute per logged-in user) |
//! | `POST /login` (body: the user name), `POST /logout` | log in (the cart is kept, the session id rotated), log out |
//! | `POST /api/login` (body: the user name) | a token (`admin` gets the admin scope) |
//! | `GET /api/me`, `POST /api/logout` | the token's claims; revoke the token |
//! | `POST /api/admin/users/{user}/revoke` | revoke every token of a user (admin scope) |
//! | `GET /metrics` | Prometheus text: every parapet metric, and requests by status (outside the layers: expose it to your monitoring only) |
//! | `GET /health` | 200 when Redis answers and every replica is current, else 503 (outside the layers, as a probe must be) |
//!
//! A demo: `POST /api/login` takes a name and no password, so anyone can be anyone, `admin`
//! included; and the session cookie (`Secure`, `__Host-`) is kept by browsers over plain
//! HTTP on `localhost` only.
//!
//! Rate limits: 300 a minute per client address on every route but `/metrics` and `/health`,
//! 20 a minute on the routes that create a session or a token, 120 a minute per user on
//! `/api`, behind the guard (`jwt::SubjectKey`), and 60 a minute per logged-in user on the
//! cart, every device of theirs together (`session::UserKey`).
//! SIGTERM or Ctrl-C: in-flight requests finish, then the server stops.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails loudly

use std::error::Error;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use tower_parapet::core::{ClientIp, KeySecret, PeerIp, RedisHandle, StoreError};
use tower_parapet::jwt::jsonwebtoken::{self, EncodingKey, Header};
use tower_parapet::jwt::{Claims, JwtLayer, Revocations, SubjectKey, VerifiedToken};
use tower_parapet::ratelimit::{HeaderStyle, MissingKey, Policy, PolicySet, Quota, RateLimitLayer};
use tower_parapet::session::{LoadUserLayer, Session, SessionError, SessionLayer, UserKey};
use tower_parapet::{cache, ratelimit, session};

// The examples' HTTP server: header-read timeout, connection limit, graceful shutdown.
#[path = "support/server.rs"]
#[allow(dead_code, clippy::duplicate_mod)] // also included by the tests beside each example
mod server;

/// The secret used when `JWT_SECRET` is unset: for development only.
pub const DEVELOPMENT_SECRET: &str = "parapet development secret: never use in production";

/// Everything the example reads from its environment (empty variables count as unset).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `CACHE_REDIS_URL`.
    pub cache_redis_url: Option<String>,
    /// `TRUSTED_PROXIES`, split on commas.
    pub trusted_proxies: Vec<String>,
    /// `KEY_SECRET`.
    pub key_secret: Option<String>,
    /// `JWT_SECRET`.
    pub jwt_secret: Option<String>,
}

impl Config {
    /// Reads the environment.
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        Self {
            redis_url: var("REDIS_URL"),
            cache_redis_url: var("CACHE_REDIS_URL"),
            trusted_proxies: var("TRUSTED_PROXIES")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default(),
            key_secret: var("KEY_SECRET"),
            jwt_secret: var("JWT_SECRET"),
        }
    }
}

/// What the handlers share, behind one `Arc` (axum clones the state per request).
struct App {
    key: EncodingKey,
    revocations: Revocations,
    redis: Option<RedisHandle>,
    cache_redis: Option<RedisHandle>,
    limits: RateLimitLayer,
    metrics: PrometheusHandle,
}

/// The app, its routes and layers. Built in memory without `REDIS_URL`.
pub async fn app(config: &Config) -> Result<Router, Box<dyn Error>> {
    // One view of the client, read by the limiter, the sessions and the cache.
    let client_ip = if config.trusted_proxies.is_empty() {
        None
    } else {
        Some(ClientIp::trusted_proxies(&config.trusted_proxies)?)
    };
    let key_secret = config
        .key_secret
        .as_deref()
        .map(KeySecret::new)
        .transpose()?;
    let secret = config.jwt_secret.as_deref().unwrap_or(DEVELOPMENT_SECRET);
    let redis = connect(config.redis_url.as_deref()).await?;
    let cache_redis = connect(config.cache_redis_url.as_deref()).await?;

    // Rate limits per client address: everything, and tighter where state is created.
    let general = PolicySet::new([Policy::new("ip", Quota::per_minute(300))?])?;
    let creating = PolicySet::new([
        Policy::new("ip", Quota::per_minute(300))?,
        Policy::new("create", Quota::per_minute(20))?,
    ])?;
    let mut limits = RateLimitLayer::builder()
        .resolver(move |head| {
            let creates = head.method == Method::POST
                && (head.uri.path() == "/login"
                    || head.uri.path() == "/api/login"
                    || head.uri.path().starts_with("/cart/items/"));
            Some(if creates {
                creating.clone()
            } else {
                general.clone()
            })
        })
        .headers(HeaderStyle::Ietf);
    limits = match &client_ip {
        Some(client_ip) => limits.key(client_ip.clone()),
        None => limits.key(PeerIp::new()),
    };
    let mut per_user = RateLimitLayer::builder()
        .policy("user", Quota::per_minute(120))
        .headers(HeaderStyle::Ietf)
        .key(SubjectKey);
    // The cart per logged-in user (every device of theirs together); anonymous carts are
    // held by the per-address limits alone.
    let mut per_shopper = RateLimitLayer::builder()
        .policy("shopper", Quota::per_minute(60))
        .headers(HeaderStyle::Ietf)
        .key(UserKey)
        .missing_key(MissingKey::Skip);
    let mut cache = cache::CacheLayer::builder();
    let mut sessions = SessionLayer::builder();
    let revocations = match &redis {
        None => Revocations::memory(),
        Some(redis) => {
            let limit_store = || -> Result<ratelimit::RedisStore, Box<dyn Error>> {
                let store = ratelimit::RedisStore::new(redis.clone())?;
                Ok(match key_secret.clone() {
                    Some(secret) => store.key_secret(secret),
                    None => store,
                })
            };
            let mut session_store = session::RedisStore::new(redis.clone())?;
            if let Some(secret) = key_secret.clone() {
                session_store = session_store.key_secret(secret);
            }
            limits = limits.store(limit_store()?);
            per_user = per_user.store(limit_store()?);
            per_shopper = per_shopper.store(limit_store()?);
            sessions = sessions.store(session_store);
            let revocations = Revocations::redis(redis.clone())?;
            if !revocations.wait_current(Duration::from_secs(5)).await {
                tracing::warn!(
                    "the revocation replica is not current yet: /api answers 503 until it is"
                );
            }
            revocations
        }
    };
    if let Some(cache_redis) = &cache_redis {
        let mut store = cache::RedisStore::new(cache_redis.clone())?;
        if let Some(secret) = key_secret.clone() {
            store = store.key_secret(secret);
        }
        cache = cache.store(cache::TieredStore::new(
            cache::MemoryStore::new(64 << 20),
            store,
        ));
    }
    if let Some(client_ip) = &client_ip {
        cache = cache.client_ip(client_ip.clone());
        sessions = sessions.client_ip(client_ip.clone());
    }
    let limits = limits.build()?;
    let guard = JwtLayer::builder()
        .hs256(secret)
        .issuer("parapet-stack")
        .realm("parapet-stack")
        .require_jti()
        .revocations(revocations.clone())
        .build()?;
    let state = App {
        key: EncodingKey::from_secret(secret.as_bytes()),
        revocations,
        redis,
        cache_redis,
        limits: limits.clone(),
        metrics: metrics(),
    };

    // Behind the guard, per user: the verified token's subject is the key.
    let api = Router::new()
        .route("/api/me", get(me))
        .route("/api/logout", post(api_logout))
        .route("/api/admin/users/{user}/revoke", post(revoke_user))
        .route_layer(per_user.build()?)
        .route_layer(guard);
    // The cart per logged-in user: the user is read from the session before the limiter.
    // (Like every limit here, with Redis away each instance decides alone: up to instances ×
    // the quota, `OnStoreError::Fallback`.)
    let carts = Router::new()
        .route("/cart", get(cart))
        .route("/cart/items/{id}", post(add_item))
        .route_layer(per_shopper.build()?)
        .route_layer(LoadUserLayer::new());
    // Outermost last (see the README's "Composing the four"): the limiter, the cache, the
    // sessions; the guard on the routes it protects.
    let app = Router::new()
        .route("/products", get(products))
        .merge(carts)
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/login", post(api_login))
        .merge(api)
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(sessions.build()?)
        .layer(cache.build()?)
        .layer(limits)
        // A deadline for every request, its body's upload included: a slow client gets 408.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        // Requests by status, counted where they are traced (no middleware of its own).
        .layer(tower_http::trace::TraceLayer::new_for_http().on_response(count_response))
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .with_state(Arc::new(state));
    Ok(app)
}

/// A handle on the Redis at `url`, checked with a PING; `None` without a URL.
async fn connect(url: Option<&str>) -> Result<Option<RedisHandle>, Box<dyn Error>> {
    let Some(url) = url else {
        return Ok(None);
    };
    let redis = RedisHandle::builder(url).build().await?;
    redis
        .ping()
        .await
        .map_err(|e| format!("cannot reach Redis at {}: {e}", redis.target()))?;
    Ok(Some(redis))
}

/// The process's Prometheus recorder (one per process, however many apps a test builds).
fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder installed first (a test harness) keeps its place.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts a response by status, after tower-http's default logging of it (DEBUG).
fn count_response<B>(response: &Response<B>, latency: Duration, span: &tracing::Span) {
    use tower_http::trace::OnResponse;
    tower_http::trace::DefaultOnResponse::default().on_response(response, latency, span);
    metrics::counter!("http_requests_total", "status" => status_label(response.status()))
        .increment(1);
}

/// The status as a label, without an allocation for the usual ones.
fn status_label(status: StatusCode) -> std::borrow::Cow<'static, str> {
    let label = match status.as_u16() {
        200 => "200",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => return status.as_u16().to_string().into(),
    };
    label.into()
}

async fn metrics_text(State(app): State<Arc<App>>) -> String {
    app.metrics.render()
}

/// 200 when every Redis answers and the limiter's deny cache and the revocation replica
/// are current (always, in memory); 503 with what is not.
async fn health(State(app): State<Arc<App>>) -> Response {
    let mut redis = true;
    for handle in [&app.redis, &app.cache_redis].into_iter().flatten() {
        redis &= handle.ping().await.is_ok();
    }
    let revocations = app.revocations.is_current();
    let limits = app.limits.limiter().is_in_sync();
    let status = if redis && revocations && limits {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        json!({ "redis": redis, "revocations_current": revocations, "limits_current": limits });
    (status, Json(body)).into_response()
}

async fn products() -> impl IntoResponse {
    tokio::time::sleep(Duration::from_millis(200)).await;
    (
        [(header::CACHE_CONTROL, "public, max-age=30")],
        Json(json!([{ "id": 1, "name": "parapet" }, { "id": 2, "name": "merlon" }])),
    )
}

/// Fields holding cart items are named `item:<id>`.
const ITEM: &str = "item:";

fn problem(status: StatusCode, title: &str) -> Response {
    (
        status,
        Json(json!({ "title": title, "status": status.as_u16() })),
    )
        .into_response()
}

/// A user name: 1 to 64 of `[A-Za-z0-9-_.@]`.
fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

async fn cart(session: Session) -> Result<Json<Value>, SessionError> {
    let items: Vec<String> = session
        .keys()
        .await?
        .into_iter()
        .filter_map(|k| k.strip_prefix(ITEM).map(str::to_owned))
        .collect();
    Ok(Json(
        json!({ "user": session.user().await?, "items": items }),
    ))
}

async fn add_item(session: Session, Path(id): Path<String>) -> Result<Response, SessionError> {
    if id.is_empty() || id.len() > 64 {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "item id must be 1 to 64 bytes",
        ));
    }
    session.insert(&format!("{ITEM}{id}"), &true).await?;
    Ok(Json(json!({ "added": id })).into_response())
}

async fn login(session: Session, user: String) -> Result<Response, SessionError> {
    let user = user.trim();
    if !valid_user(user) {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "user must be 1 to 64 of [A-Za-z0-9-_.@]",
        ));
    }
    // The anonymous cart stays; the session id is rotated (no fixation).
    session.set_user(user).await?;
    Ok(Json(json!({ "user": user })).into_response())
}

async fn logout(session: Session) -> Result<Json<Value>, SessionError> {
    session.destroy().await?;
    Ok(Json(json!({ "logged_out": true })))
}

async fn api_login(State(app): State<Arc<App>>, user: String) -> Response {
    let user = user.trim();
    if !valid_user(user) {
        return problem(
            StatusCode::BAD_REQUEST,
            "user must be 1 to 64 of [A-Za-z0-9-_.@]",
        );
    }
    // `iat` carries milliseconds (RFC 7519 NumericDate may have a fraction): a revocation
    // refuses the tokens issued up to its millisecond, so a login right after one is fine.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).unwrap();
    let mut claims = json!({
        "iss": "parapet-stack",
        "sub": user,
        "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "iat": now_ms as f64 / 1000.0,
        "exp": now_ms / 1000 + 15 * 60,
    });
    if user == "admin" {
        claims["scope"] = json!("admin");
    }
    let token = jsonwebtoken::encode(&Header::default(), &claims, &app.key).unwrap();
    Json(json!({ "token": token })).into_response()
}

async fn me(Claims(claims): Claims<Value>) -> Json<Value> {
    Json(claims)
}

fn store_error(e: StoreError) -> Response {
    tracing::warn!("revocation failed: {e}");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "revocations are unavailable",
    )
}

async fn api_logout(State(app): State<Arc<App>>, token: VerifiedToken) -> Response {
    match app.revocations.revoke_token(&token).await {
        Ok(()) => Json(json!({ "logged_out": true })).into_response(),
        Err(e) => store_error(e),
    }
}

async fn revoke_user(
    State(app): State<Arc<App>>,
    token: VerifiedToken,
    Path(user): Path<String>,
) -> Response {
    if let Err(refusal) = token.require_scope("admin") {
        return refusal.into_response();
    }
    match app.revocations.revoke_user(&user).await {
        Ok(()) => Json(json!({ "revoked": user })).into_response(),
        Err(e) => store_error(e),
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, app, server::Limits::default(), shutdown).await
}

/// Listens on `host:port`; the error names the address (`cannot listen on
/// 127.0.0.1:3000: Address already in use`).
pub async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener, Box<dyn Error>> {
    tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}").into())
}

async fn terminated() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[tokio::main]
async fn main() {
    // RUST_LOG as `level` or `target=level,…` (tracing-subscriber's Targets: no regex to
    // compile), `info` by default.
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(filter)
        .init();
    if let Err(e) = run().await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let config = Config::from_env();
    if config.jwt_secret.is_none() {
        tracing::warn!(
            "JWT_SECRET is unset: using a development secret; never do this in production"
        );
    }
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 3010,
    };
    let app = app(&config).await?;
    let listener = bind(&host, port).await?;
    tracing::info!(
        "listening on http://{} ({}); try: curl -i localhost:{port}/products",
        listener.local_addr()?,
        if config.redis_url.is_some() {
            "redis"
        } else {
            "in memory"
        },
    );
    // Behind proxies every connection comes from a proxy: no limit per address there.
    let mut limits = server::Limits::default();
    if !config.trusted_proxies.is_empty() {
        limits.max_connections_per_ip = limits.max_connections;
    }
    server::serve(listener, app, limits, terminated()).await?;
    Ok(())
}
